import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { installFirewallScript, removeFirewallScript, renderFirewallRules, renderFirewallScript, type FirewallInput } from "../../components/render/firewall";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

const redis: FirewallInput = { service: "redis", address: "10.0.0.21", port: 6379, containerPort: 6379, bridgeSubnet: "172.17.0.0/16", sources: ["10.0.0.13/32", "10.0.0.11/32", "10.0.0.12/32"] };

/** Runs a script in a private network namespace (real iptables, nothing on this machine touched). */
function inNetns(script: string): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("unshare", ["-n", "sh", "-c", script], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const canUseNetns = inNetns("iptables -S >/dev/null").status === 0;
/** What Docker leaves in a fresh network namespace: DOCKER-USER, and FORWARD jumping to it. */
const DOCKER_STARTED = "iptables -N DOCKER-USER; iptables -A FORWARD -j DOCKER-USER";

describe("host firewall for Redis and PostgreSQL", () => {
    it("lets the GitLab ranges return and drops the rest", () => {
        assert.equal(renderFirewallRules(redis), "*filter\n:GLC-REDIS - [0:0]\n-F GLC-REDIS\n-A GLC-REDIS -s 10.0.0.11/32 -j RETURN\n-A GLC-REDIS -s 10.0.0.12/32 -j RETURN\n-A GLC-REDIS -s 10.0.0.13/32 -j RETURN\n-A GLC-REDIS -j DROP\nCOMMIT\n");
        assert.throws(() => renderFirewallRules({ ...redis, sources: [] }), /at least one allowed source/);
        assert.throws(() => renderFirewallScript({ ...redis, sources: ["fd00::1/128"] }), /same address family/);
    });

    it("scripts pass sh -n and shellcheck", () => {
        for (const s of [renderFirewallScript(redis), installFirewallScript(redis), removeFirewallScript(redis)]) {
            assert.equal(shSyntax(s).status, 0);
            const lint = shellcheck(s);
            assert.equal(lint.status, 0, lint.stdout);
        }
    });

    it("applied by real iptables: the same rules after a second run, and nothing left after removal", { skip: !canUseNetns && "unshare -n is not permitted here" }, () => {
        const dir = tempDir("fw");
        const file = (name: string, script: string) => { fs.writeFileSync(path.join(dir, name), script); return path.join(dir, name); };
        const apply = file("apply.sh", renderFirewallScript(redis));
        const remove = file("remove.sh", removeFirewallScript(redis));
        const r = inNetns(`set -e
${DOCKER_STARTED}
sh ${apply} >/dev/null; iptables -S > ${dir}/first
sh ${apply} >/dev/null; iptables -S > ${dir}/second
cmp ${dir}/first ${dir}/second && echo SAME
cat ${dir}/second
echo REMOVED
sh ${remove} >/dev/null
iptables -S`);
        assert.equal(r.status, 0, r.stderr);
        const [afterApply, afterRemove] = r.stdout.split("REMOVED\n");
        assert.match(afterApply!, /^SAME$/m);
        // Reply packets carry the same original destination: only the ORIGINAL direction may jump.
        assert.match(afterApply!, /^-A DOCKER-USER -p tcp -m conntrack --ctorigdst 10\.0\.0\.21 --ctorigdstport 6379 --ctdir ORIGINAL -j GLC-REDIS$/m);
        assert.match(afterApply!, /^-A DOCKER-USER -d 172\.17\.0\.0\/16 -p tcp -m tcp --dport 6379 -m conntrack ! --ctstate DNAT --ctdir ORIGINAL -j GLC-REDIS$/m);
        assert.match(afterApply!, /^-A INPUT -d 10\.0\.0\.21\/32 -p tcp -m tcp --dport 6379 -m conntrack --ctdir ORIGINAL -j GLC-REDIS$/m);
        assert.match(afterApply!, /^-A GLC-REDIS -s 10\.0\.0\.11\/32 -j RETURN$/m);
        assert.match(afterApply!, /^-A GLC-REDIS -j DROP$/m);
        assert.equal((afterApply!.match(/-j GLC-REDIS$/gm) ?? []).length, 3, "three jumps, however often it runs");
        assert.doesNotMatch(afterRemove!, /GLC-REDIS/);
    });

    it("a source change replaces the chain's rules", { skip: !canUseNetns && "unshare -n is not permitted here" }, () => {
        const dir = tempDir("fw");
        fs.writeFileSync(path.join(dir, "a.sh"), renderFirewallScript(redis));
        fs.writeFileSync(path.join(dir, "b.sh"), renderFirewallScript({ ...redis, sources: ["10.0.0.14/32"] }));
        const r = inNetns(`set -e\n${DOCKER_STARTED}\nsh ${dir}/a.sh >/dev/null\nsh ${dir}/b.sh >/dev/null\niptables -S GLC-REDIS`);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.stdout.trim().split("\n"), ["-N GLC-REDIS", "-A GLC-REDIS -s 10.0.0.14/32 -j RETURN", "-A GLC-REDIS -j DROP"]);
    });
});

describe("layouts the data-host firewall cannot serve", () => {
    it("an IPv6 host that runs GitLab and Redis or PostgreSQL is refused with both keys named, not a crash", async () => {
        const cfg = threeNodeConfig();
        const v6: Record<string, string> = { app1: "fd00::11", app2: "fd00::12", app3: "fd00::13", data1: "fd00::21", edge1: "fd00::5" };
        for (const [host, address] of Object.entries(v6)) cfg.hosts[host].address = address;
        cfg.roles.gitlab = ["app1", "app2", "data1"];
        await assert.rejects(evaluate(cfg), (e: Error & { problems?: string[] }) => {
            assert.equal(e.name, "ConfigError", e.stack);
            assert.ok(e.problems?.some(p => /roles\.redis: "data1" is also in gitlab-cluster:roles\.gitlab and has an IPv6 address/.test(p)), e.message);
            assert.ok(e.problems?.some(p => /roles\.postgres: "data1"/.test(p)), e.message);
            return true;
        });
        cfg.roles.gitlab = ["app1", "app2", "app3"];
        await evaluate(cfg); // the same hosts with the data services on their own host are fine
    });
});
