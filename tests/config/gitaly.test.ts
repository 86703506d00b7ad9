// roles.gitaly and the gitaly key: where the Gitaly node may run, what it may not share with
// another service on its host, and where the NFS server may be now that the repositories are
// not on the share; the warning for a multi-node cluster without a Gitaly node.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GITALY_DEFAULT_PORT, configWarnings, loadClusterConfig } from "../../components/config";
import { flatConfig } from "../../scripts/evaluate";
import { gitalyConfig, nNodeConfig, testHostKey, threeNodeConfig } from "../fixtures";
import { problemsOf, problemOf } from "../support/config";



/** As the program reads a stack: the flat `gitlab-cluster:*` map, every key encrypted. */
const load = (raw: Record<string, unknown>) => loadClusterConfig(flatConfig(raw), () => true);

describe("roles.gitaly", () => {
    it("accepts the Gitaly example and fills in gitaly's defaults", () => {
        const cfg = load(gitalyConfig());
        assert.equal(cfg.roles.gitaly, "gitaly1");
        assert.equal(cfg.gitaly.port, GITALY_DEFAULT_PORT);
        assert.equal(GITALY_DEFAULT_PORT, 8075);
        assert.equal(cfg.gitaly.dataRoot, "/srv/gitlab-cluster/gitaly");
    });

    it("refuses a host that is not in hosts, naming the key and the hosts it knows", () => {
        const raw = gitalyConfig();
        raw.roles.gitaly = "gitaly9";
        assert.equal(problemOf(raw), 'gitlab-cluster:roles.gitaly: names host "gitaly9", which is not in gitlab-cluster:hosts (app1, app2, app3, data1, edge1, gitaly1, nfs1)');
    });

    it("refuses a GitLab host, naming the key", () => {
        for (const host of ["app1", "app3"]) {
            const raw = gitalyConfig();
            raw.roles.gitaly = host;
            assert.match(problemOf(raw), new RegExp(`^gitlab-cluster:roles\\.gitaly: "${host}" is also in gitlab-cluster:roles\\.gitlab: the Gitaly node needs a host of its own`), host);
        }
    });

    it("refuses the NFS server's host, naming the key", () => {
        const raw = gitalyConfig();
        raw.roles.gitaly = "nfs1";
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.gitaly: "nfs1" is also gitlab-cluster:roles\.nfsServer: /);
        const onApp = threeNodeConfig(); // the share served by a GitLab host: refused as a GitLab host, and as the NFS server
        onApp.roles.gitaly = "app1";
        const problems = problemsOf(onApp);
        assert.equal(problems.length, 2, problems.join(" | "));
        assert.ok(problems.every(p => p.startsWith("gitlab-cluster:roles.gitaly: ")), problems.join(" | "));
    });

    it("accepts a host that runs other services but no GitLab node nor the share (the data host)", () => {
        const raw = gitalyConfig();
        raw.roles.gitaly = "data1";
        assert.deepEqual(problemsOf(raw), []);
    });
});

describe("the Gitaly node's port and directory on its host", () => {
    it("refuses gitaly.port equal to another port published on the same host, naming both keys", () => {
        const raw = gitalyConfig();
        raw.roles.gitaly = "data1";
        raw.gitaly = { port: 5432 };
        assert.match(problemOf(raw), /^gitlab-cluster:gitaly\.port: port 5432 on host "data1" \(10\.0\.0\.21\) is also gitlab-cluster:postgres\.port \(PostgreSQL\): only one can listen there/);
        raw.gitaly = { port: 6379 };
        assert.match(problemOf(raw), /^gitlab-cluster:gitaly\.port: port 6379 on host "data1" \(10\.0\.0\.21\) is also gitlab-cluster:redis\.port \(Redis\)/);
    });

    it("refuses gitaly.port equal to the host's own sshd", () => {
        const raw = gitalyConfig();
        raw.gitaly = { port: 22 };
        assert.match(problemOf(raw), /^gitlab-cluster:gitaly\.port: port 22 on host "gitaly1" \(10\.0\.0\.31\) is also gitlab-cluster:ssh\.port \(the host's own sshd/);
    });

    it("accepts gitaly.port equal to a port of another host", () => {
        const raw = gitalyConfig();
        raw.gitaly = { port: 5432 };
        assert.deepEqual(problemsOf(raw), []);
    });

    it("refuses gitaly.dataRoot equal to, inside or holding postgres.dataRoot on the same host, naming both keys", () => {
        for (const [dataRoot, how] of [
            ["/srv/gitlab-cluster/postgres", "is the same directory as"],
            ["/srv/gitlab-cluster/postgres/gitaly", "is inside"],
            ["/srv/gitlab-cluster", "holds"],
        ] as const) {
            const raw = gitalyConfig();
            raw.roles.gitaly = "data1";
            raw.gitaly = { dataRoot };
            const problems = problemsOf(raw);
            // "/srv/gitlab-cluster" also holds redis.dataRoot there.
            assert.ok(problems.length >= 1, dataRoot);
            assert.ok(problems.some(p => p.startsWith(`gitlab-cluster:gitaly.dataRoot: ${dataRoot} on host "data1" ${how} gitlab-cluster:postgres.dataRoot (/srv/gitlab-cluster/postgres)`)), problems.join(" | "));
            assert.ok(problems.every(p => p.startsWith("gitlab-cluster:gitaly.dataRoot: ")), problems.join(" | "));
        }
    });

    it("accepts the same directory on another host", () => {
        const raw = gitalyConfig();
        raw.gitaly = { dataRoot: "/srv/gitlab-cluster/postgres" };
        assert.deepEqual(problemsOf(raw), []);
    });
});

describe("roles.nfsServer, with the repositories off the share", () => {
    it("accepts a storage host that runs no GitLab node", () => {
        const cfg = load(gitalyConfig());
        assert.equal(cfg.roles.nfsServer, "nfs1");
        assert.ok(!cfg.roles.gitlab.includes("nfs1"));
        const data = threeNodeConfig();
        data.roles.nfsServer = "data1";
        assert.deepEqual(problemsOf(data), []);
    });

    it("refuses the balancer's host, naming the key", () => {
        const raw = gitalyConfig();
        raw.roles.nfsServer = "edge1";
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.nfsServer: "edge1" is the load balancer/);
    });

    it("refuses a host that is not in hosts", () => {
        const raw = gitalyConfig();
        raw.roles.nfsServer = "nfs9";
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.nfsServer: names host "nfs9", which is not in gitlab-cluster:hosts/);
    });
});

describe("the warning for repositories on NFS", () => {
    const gitalyWarning = (ws: readonly string[]) => ws.filter(w => w.startsWith("gitlab-cluster:roles.gitaly: "));

    it("warns for several GitLab nodes without roles.gitaly, naming the key", () => {
        const ws = gitalyWarning(configWarnings(load(threeNodeConfig())));
        assert.equal(ws.length, 1);
        assert.match(ws[0]!, /^gitlab-cluster:roles\.gitaly: is not set, so the Git repositories are on the NFS share, which GitLab does not support/);
    });

    it("does not warn with roles.gitaly set", () => {
        assert.deepEqual(configWarnings(load(gitalyConfig())), []);
    });

    it("does not warn for one GitLab node (no share), with or without a Gitaly node", () => {
        assert.deepEqual(configWarnings(load(nNodeConfig(1))), []);
        const withGitaly = nNodeConfig(1);
        withGitaly.hosts.gitaly1 = { address: "10.0.0.31", ssh: { hostKey: testHostKey("gitaly1") } };
        withGitaly.roles.gitaly = "gitaly1";
        assert.deepEqual(configWarnings(load(withGitaly)), []);
    });
});
