// Issue 16: mistakes that validated key by key and failed only at deploy (ports that collide on a
// host, directories inside each other), or were silently ignored (a misspelt namespace, cron
// schedules that never run or run every minute).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, configWarnings, cronScheduleProblem, ignoredConfigWarnings, isCronSchedule, loadClusterConfig, parseClusterConfig } from "../../components/config";
import { threeNodeConfig } from "../fixtures";
import { allSecret, problemsOf, problemOf } from "../support/config";


describe("layouts refused before deploy (issue 16, item 4)", () => {
    it("refuses nfs.path equal to, inside, or holding gitlab.dataRoot, naming both keys", () => {
        for (const [nfsPath, dataRoot, how] of [
            ["/srv/gitlab", "/srv/gitlab", "is the same directory as"],
            ["/srv/gitlab/nfs", "/srv/gitlab", "is inside"],
            ["/data/gitlab", "/data/gitlab/node/", "holds"],
        ] as const) {
            const raw = threeNodeConfig();
            raw.nfs = { path: nfsPath };
            raw.gitlab.dataRoot = dataRoot;
            const problems = problemsOf(raw);
            // One problem per GitLab host: each holds both directories.
            assert.equal(problems.length, 3, problems.join("\n"));
            assert.match(problems[0]!, new RegExp(`^gitlab-cluster:nfs\\.path: ${nfsPath} on host "app1" ${how} gitlab-cluster:gitlab\\.dataRoot \\(`), problems[0]);
        }
        const raw = threeNodeConfig();
        raw.nfs = { path: "/srv/gitlab-nfs" };
        raw.gitlab.dataRoot = "/srv/gitlab";
        assert.deepEqual(problemsOf(raw), [], "a shared prefix is not nesting");
    });

    it("refuses other owned directories nested on one host (redis in postgres, a backup target in the balancer's config)", () => {
        const raw = threeNodeConfig();
        raw.redis = { dataRoot: "/srv/gitlab-cluster/postgres/redis" };
        assert.match(problemOf(raw), /^gitlab-cluster:postgres\.dataRoot: \/srv\/gitlab-cluster\/postgres on host "data1" holds gitlab-cluster:redis\.dataRoot \(\/srv\/gitlab-cluster\/postgres\/redis\)/);
        const apart = threeNodeConfig();
        apart.roles.redis = "edge1";
        apart.redis = { dataRoot: "/srv/gitlab-cluster/postgres/redis" };
        assert.deepEqual(problemsOf(apart), [], "on different hosts they do not meet");
    });

    it("refuses redis.port equal to PostgreSQL's on the same host, naming both keys", () => {
        const raw = threeNodeConfig();
        raw.redis = { port: 5432 };
        assert.equal(problemOf(raw), 'gitlab-cluster:postgres.port: port 5432 on host "data1" (10.0.0.21) is also gitlab-cluster:redis.port (Redis): ' +
            "only one can listen there, and the deploy would fail when the second binds; give one of them another port");
        raw.roles.redis = "edge1";
        assert.deepEqual(problemsOf(raw), [], "on different hosts");
    });

    it("refuses httpsPort equal to httpPort", () => {
        const raw = threeNodeConfig();
        raw.loadBalancer.httpsPort = 80;
        assert.match(problemOf(raw), /^gitlab-cluster:loadBalancer\.httpsPort: port 80 on host "edge1" \(10\.0\.0\.5\) is also gitlab-cluster:loadBalancer\.httpPort \(the balancer's HTTP\)/);
    });

    it("refuses nodeSshPort or loadBalancer.sshPort 22 on a host reached over SSH on port 22, and accepts them when sshd is elsewhere", () => {
        const node = threeNodeConfig();
        node.gitlab.nodeSshPort = 22;
        const problems = problemsOf(node);
        assert.equal(problems.length, 3, problems.join("\n"));
        assert.match(problems[0]!, /^gitlab-cluster:gitlab\.nodeSshPort: port 22 on host "app1" \(10\.0\.0\.11\) is also gitlab-cluster:ssh\.port \(the host's own sshd/);
        const lb = threeNodeConfig();
        lb.loadBalancer.sshPort = 22;
        assert.match(problemOf(lb), /^gitlab-cluster:loadBalancer\.sshPort: port 22 on host "edge1" .* is also gitlab-cluster:ssh\.port /);
        lb.hosts.edge1.ssh.port = 2200;
        assert.deepEqual(problemsOf(lb), [], "sshd on 2200: the balancer may take 22");
        lb.loadBalancer.sshPort = 2200;
        assert.match(problemOf(lb), /^gitlab-cluster:loadBalancer\.sshPort: port 2200 on host "edge1" .* is also gitlab-cluster:hosts\.edge1\.ssh\.port /);
    });

    it("checks every published port of a host at once: data services, GitLab's 80 and nodeSshPort, the balancer's ports", () => {
        const raw = threeNodeConfig();
        raw.roles.loadBalancer = "data1";
        raw.loadBalancer.httpPort = 6379;
        raw.loadBalancer.sshPort = 5432;
        const problems = problemsOf(raw);
        assert.deepEqual(problems.map(p => p.split(":")[1]!.split(" ")[0]), ["loadBalancer.httpPort", "loadBalancer.sshPort"], problems.join("\n"));
        assert.match(problems[0]!, /is also gitlab-cluster:redis\.port \(Redis\)/);
        assert.match(problems[1]!, /is also gitlab-cluster:postgres\.port \(PostgreSQL\)/);
        const gitlab = threeNodeConfig();
        gitlab.roles.redis = "app2";
        gitlab.redis = { port: 80 };
        assert.match(problemOf(gitlab), /^gitlab-cluster:redis\.port: port 80 on host "app2" .* is also gitlab-cluster:roles\.gitlab \(GitLab's HTTP port \(80, fixed\)\)/);
        const lbOnNode = threeNodeConfig();
        lbOnNode.roles.loadBalancer = "app1";
        assert.deepEqual(problemsOf(lbOnNode).map(p => p.split(" ")[0]), ["gitlab-cluster:loadBalancer.httpPort:", "gitlab-cluster:loadBalancer.sshPort:"]);
        // A balancer on another address of the same host does not collide with the node's ports.
        lbOnNode.loadBalancer.listenAddress = "10.0.0.99";
        assert.deepEqual(problemsOf(lbOnNode), []);
    });
});

describe("cron schedules (issue 16, item 9)", () => {
    it("names the field that is out of range, and says 'five fields' only for a wrong count", () => {
        assert.equal(cronScheduleProblem("0 25 * * *"), "the hour field '25' is out of range: 25 is not within 0-23");
        assert.equal(cronScheduleProblem("61 3 * * *"), "the minute field '61' is out of range: 61 is not within 0-59");
        assert.equal(cronScheduleProblem("0 3 0 * *"), "the day-of-month field '0' is out of range: 0 is not within 1-31");
        assert.equal(cronScheduleProblem("0 3 * 13 *"), "the month field '13' is out of range: 13 is not within 1-12");
        assert.equal(cronScheduleProblem("0 3 * * 1-8"), "the day-of-week field '1-8' is out of range: 8 is not within 0-7");
        assert.match(cronScheduleProblem("0 3 * *")!, /^must be five fields .*got 4$/);
        const raw = threeNodeConfig();
        raw.backup = { schedule: "0 25 * * *" };
        assert.equal(problemOf(raw), "gitlab-cluster:backup.schedule: the hour field '25' is out of range: 25 is not within 0-23 (got \"0 25 * * *\")");
    });

    it("refuses schedules that never run, minding cron's either-day rule", () => {
        for (const never of ["0 3 30 2 *", "0 3 31 4,6,9,11 *", "0 3 30-31 2 *", "0 3 31 2 */2"]) assert.match(cronScheduleProblem(never) ?? "", /^never runs/, never);
        // Both day fields restricted: cron runs on either, so Mondays in February run.
        for (const runs of ["0 3 30 2 1", "0 3 29 2 *", "0 3 31 * *", "0 3 */30 2 *", "0 3 * 2 1"]) assert.equal(cronScheduleProblem(runs), undefined, runs);
        assert.ok(!isCronSchedule("0 3 30 2 *"));
    });

    it("warns about schedules that run more than once an hour", () => {
        const at = (schedule: string) => {
            const raw = threeNodeConfig();
            raw.backup = { schedule };
            return configWarnings(parseClusterConfig(raw, allSecret)).filter(w => w.startsWith("gitlab-cluster:backup."));
        };
        assert.deepEqual(at("0 3 * * *"), []);
        assert.deepEqual(at("0 * * * *"), [], "hourly is allowed");
        assert.match(at("*/15 * * * *")[0] ?? "", /^gitlab-cluster:backup\.schedule: "\*\/15 \* \* \* \*" runs a full backup 4 times an hour/);
        assert.match(at("* 3 * * *")[0] ?? "", /60 times an hour/);
        assert.deepEqual(configWarnings(parseClusterConfig(threeNodeConfig(), allSecret)).filter(w => w.startsWith("gitlab-cluster:backup.")), [], "no backup, no warning");
    });
});

describe("silently ignored keys (issue 16, item 9)", () => {
    it("warns about a namespace one edit from gitlab-cluster, with the key it meant", () => {
        assert.deepEqual(ignoredConfigWarnings(["gitlab_cluster:backup"]), [
            'gitlab_cluster:backup: is ignored: its namespace "gitlab_cluster" is not "gitlab-cluster", the only one this program reads; did you mean gitlab-cluster:backup?',
        ]);
        for (const key of ["gitlab-clusters:backup", "gitlab-clustr:ssh", "gitlab-culster:roles", "Gitlab-cluster:gitlab", "gitlabcluster:hosts"]) {
            assert.equal(ignoredConfigWarnings([key]).length, 1, key);
        }
        assert.match(ignoredConfigWarnings(["gitlab_cluster:bakup"])[0]!, /"bakup" is not one of its keys either \(hosts, ssh, roles/);
        assert.deepEqual(ignoredConfigWarnings(["gitlab-cluster:backup", "docker:host", "gitlab:token", "aws:region", "gitlab-runner:x", "plain"]), []);
    });

    it("refuses an unknown key of gitlab-cluster with the key it likely meant", () => {
        assert.throws(() => loadClusterConfig({ "gitlab-cluster:bakup": "{}" }, () => true),
            (e: unknown) => e instanceof ConfigError && /^gitlab-cluster:bakup: unknown key \(known: .*\); did you mean gitlab-cluster:backup\?$/.test(e.problems[0]!));
    });
});
