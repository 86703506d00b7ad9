// Reads the stack's configuration, builds the cluster, exports what operators need.
import * as pulumi from "@pulumi/pulumi";
import { GitlabCluster } from "./components/cluster";
import { ConfigError, configWarnings, ignoredConfigWarnings, loadClusterConfig } from "./components/config";
import { sshFilesDir } from "./components/host";

// Marked @internal in the SDK's typings but part of its runtime: tells which keys are secrets.
const runtime = pulumi.runtime as unknown as { isConfigSecret(key: string): boolean };

function readConfig() {
    try {
        const all = pulumi.runtime.allConfig();
        for (const warning of ignoredConfigWarnings(Object.keys(all))) void pulumi.log.warn(warning);
        const config = loadClusterConfig(all, k => runtime.isConfigSecret(k));
        for (const warning of configWarnings(config)) void pulumi.log.warn(warning);
        return config;
    } catch (err) {
        // A RunError prints its message without a stack trace: the message names the key.
        if (err instanceof ConfigError) throw new pulumi.RunError(err.message);
        throw err;
    }
}

const cluster = new GitlabCluster("gitlab", { config: readConfig(), sshFilesDir: sshFilesDir(pulumi.getStack()) });

export const url = cluster.url;
export const balancerAddress = cluster.balancerAddress;
export const nodes = cluster.nodes;
export const endpoints = cluster.endpoints;
export const initialRootPassword = cluster.initialRootPassword;
/** Read by `npm run ops`. */
export const ops = cluster.ops;
