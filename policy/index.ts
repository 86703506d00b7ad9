// The gitlab-cluster policy pack: `pulumi preview --policy-pack policy` (and `up`) run it, and
// every policy is mandatory, so a violation stops the preview. The checks live in policies.ts.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("gitlab-cluster", { enforcementLevel: "mandatory", policies });
