// L14 (issue 15): the PostgreSQL superuser password reaches the image by file
// (POSTGRES_PASSWORD_FILE, a 0600 file mounted read-only) and is not left in the server's
// environment (/proc/1/environ) — the official entrypoint exports the file's content to the
// server it starts, so the container's command initialises in a child process first.
// Checked on the container spec, and by running that spec's entrypoint and command for real:
// the integration suite's postgres stand-in entrypoint (the official one's file_env and
// docker-ensure-initdb.sh behaviour) and the PostgreSQL binaries installed here.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { nNodeConfig, threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { shellcheck, shSyntax, tempDir } from "../support/readers";
import { freePort } from "../support/net";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("pg-keys");
const passwordFor = (name: string) => `pw-of-${name}-'"\\$x`;
const SUPERUSER_PASSWORD = passwordFor("gitlab-postgres-superuser-password");
const STANDIN_ENTRYPOINT = path.join(__dirname, "..", "..", "..", "tests", "integration", "images", "postgres-standin", "entrypoint");

interface Volume { hostPath?: string; volumeName?: string; containerPath: string; readOnly?: boolean }

describe("PostgreSQL superuser password (L14)", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(threeNodeConfig(), { passwordFor }); });

    it("the container spec: no POSTGRES_PASSWORD, POSTGRES_PASSWORD_FILE naming a read-only mounted 0600 file, a command that keeps the password from the server", () => {
        const pg = e.byName("gitlab-postgres");
        const envs = pg.inputs.envs as string[];
        assert.ok(!envs.some(v => v.startsWith("POSTGRES_PASSWORD=")), envs.join(" "));
        assert.ok(!envs.some(v => v.includes(SUPERUSER_PASSWORD)));
        assert.ok(envs.includes("POSTGRES_PASSWORD_FILE=/run/secrets/gitlab-cluster/superuser-password"), envs.join(" "));
        const dataRoot = e.config.postgres.dataRoot;
        assert.deepEqual((pg.inputs.volumes as Volume[]).find(v => v.containerPath === "/run/secrets/gitlab-cluster"),
            { hostPath: `${dataRoot}/secrets`, containerPath: "/run/secrets/gitlab-cluster", readOnly: true });
        const write = e.byName("gitlab-postgres-superuser-password");
        assert.match(str(write, "create"), new RegExp(`^# writes: ${dataRoot}/secrets/superuser-password mode 0600$`, "m"));
        assert.match(str(write, "create"), /chown 999:999 "\$tmp"/);
        assert.equal(write.inputs.stdin, SUPERUSER_PASSWORD);
        assert.ok(write.secretInputs.includes("stdin"));
        // The command: a shell (the image's entrypoint runs any command but `postgres` as is)
        // that initialises in a child process, then starts the server without the variables.
        const command = pg.inputs.command as string[];
        assert.deepEqual(command.slice(0, 2), ["sh", "-c"]);
        const script = command[2]!;
        assert.match(script, /docker-ensure-initdb\.sh "\$@"\n\s*unset POSTGRES_PASSWORD_FILE POSTGRES_PASSWORD\n/);
        assert.match(script, /\nexec docker-entrypoint\.sh "\$@"\n$/);
        assert.equal(command[4], "postgres");
        assert.ok(command.includes("hba_file=/etc/postgresql/gitlab-cluster/pg_hba.conf"));
        assert.equal(shSyntax(script).status, 0);
        const lint = shellcheck(`#!/bin/sh\n${script}`);
        assert.equal(lint.status, 0, lint.stdout);
        assert.ok(!JSON.stringify(pg.inputs).includes(SUPERUSER_PASSWORD));
    });

    describe("run for real: the spec's entrypoint and command, twice, on a fresh and then an existing data directory", () => {
        const pgBin = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").map(v => `/usr/lib/postgresql/${v}/bin`).find(d => fs.existsSync(`${d}/initdb`)) : undefined;
        const canRun = process.getuid?.() === 0 && pgBin !== undefined && spawnSync("id", ["postgres"]).status === 0;
        let server: ChildProcess | undefined;
        after(() => { if (server && server.exitCode === null) server.kill("SIGKILL"); });

        it("the server's /proc/<pid>/environ never holds the password, and the password works", { skip: canRun ? false : "needs root, a postgres user and PostgreSQL binaries" }, async () => {
            const pg = e.byName("gitlab-postgres");
            const root = tempDir("pg-run");
            fs.chmodSync(root, 0o755);
            // Bind mounts: each mounted host directory is `root/<n>`; the data volume is root/data.
            const dataRoot = e.config.postgres.dataRoot;
            const hostDir = (p: string) => p.split(dataRoot).join(path.join(root, "host"));
            const mounts = (pg.inputs.volumes as Volume[]).map(v => ({ containerPath: v.containerPath, local: v.hostPath !== undefined ? hostDir(v.hostPath) : path.join(root, "data") }));
            const inContainer = (s: string) => mounts.reduce((acc, m) => acc.split(m.containerPath).join(m.local), s);
            // The program's own commands write the password file and pg_hba.conf.
            for (const name of ["gitlab-postgres-superuser-password", "gitlab-postgres-hba"]) {
                const r = e.byName(name);
                const out = spawnSync("sh", ["-c", hostDir(str(r, "create"))], { input: String(r.inputs.stdin), encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
                assert.equal(out.status, 0, `${name}: ${out.stderr}`);
            }
            const secretFile = path.join(root, "host", "secrets", "superuser-password");
            assert.equal(fs.statSync(secretFile).mode & 0o777, 0o600);
            assert.equal(fs.readFileSync(secretFile, "utf8"), SUPERUSER_PASSWORD);
            // Test only: let the superuser in over TCP to prove the password was set.
            fs.appendFileSync(path.join(root, "host", "conf", "pg_hba.conf"), "host all postgres 127.0.0.1/32 scram-sha-256\n");
            const bin = path.join(root, "bin");
            fs.mkdirSync(bin, { mode: 0o755 });
            fs.copyFileSync(STANDIN_ENTRYPOINT, path.join(bin, "docker-entrypoint.sh"));
            fs.chmodSync(path.join(bin, "docker-entrypoint.sh"), 0o755);
            fs.symlinkSync("docker-entrypoint.sh", path.join(bin, "docker-ensure-initdb.sh"));
            const socketDir = path.join(root, "sock");
            fs.mkdirSync(socketDir);
            spawnSync("chown", ["postgres:postgres", socketDir]);
            const port = await freePort();
            const env: Record<string, string> = {
                PATH: `${bin}:${pgBin}:/usr/sbin:/usr/bin:/sbin:/bin`, PGDATA: path.join(root, "data"), LANG: "C.UTF-8",
                ...Object.fromEntries((pg.inputs.envs as string[]).map(kv => { const i = kv.indexOf("="); return [kv.slice(0, i), inContainer(kv.slice(i + 1))]; })),
            };
            // The image's ENTRYPOINT, then the container's command; here on a private port and socket.
            const argv = ["docker-entrypoint.sh", ...(pg.inputs.command as string[]).map(inContainer),
                "-c", `port=${port}`, "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${socketDir}`];

            for (const start of ["first start (initdb)", "second start (existing data)"]) {
                let log = "";
                server = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
                server.stdout!.on("data", d => { log += d; });
                server.stderr!.on("data", d => { log += d; });
                const deadline = Date.now() + 60_000;
                while (spawnSync(`${pgBin}/pg_isready`, ["-q", "-h", "127.0.0.1", "-p", String(port)]).status !== 0) {
                    assert.ok(Date.now() < deadline && server.exitCode === null, `${start}: the server did not start:\n${log}`);
                    await new Promise(r => setTimeout(r, 200));
                }
                const pid = server.pid!;
                // The spawned process became the server (every step execs): this is its PID 1.
                assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0]!, /postgres$/);
                const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
                assert.ok(!environ.some(v => v.includes(SUPERUSER_PASSWORD)), `${start}: the password is in the server's environment: ${environ.filter(v => v.startsWith("POSTGRES")).join(" ")}`);
                assert.ok(!environ.some(v => v.startsWith("POSTGRES_PASSWORD_FILE=")), start);
                const login = (password: string) => spawnSync(`${pgBin}/psql`, ["-X", "-qAt", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "SELECT 1"],
                    { env: { PATH: env.PATH!, PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" }, encoding: "utf8" });
                assert.equal(login(SUPERUSER_PASSWORD).stdout.trim(), "1", `${start}: ${login(SUPERUSER_PASSWORD).stderr}`);
                assert.notEqual(login("wrong").status, 0);
                const exited = new Promise<void>(resolve => server!.once("exit", () => resolve()));
                server.kill("SIGINT"); // the image's STOPSIGNAL: fast shutdown
                await exited;
            }
        });
    });
});

// Issue 12, finding 2: max_connections was the image's 100; three GitLab nodes open far more
// (GitLab: 2 × (Puma + Sidekiq) per node). The server must take the program's number: checked on
// the spec for 1, 3 and 10 nodes and an override, and by a real PostgreSQL started with the
// spec's own server arguments, asked `SHOW max_connections`.
describe("PostgreSQL max_connections (issue 12)", () => {
    /** The `postgres` arguments of the container's command (after the start script). */
    const serverArgs = (e: Evaluation): string[] => {
        const command = e.byName("gitlab-postgres").inputs.command as string[];
        assert.equal(command[4], "postgres");
        return command.slice(5);
    };
    const setting = (args: readonly string[], name: string): string | undefined =>
        args.filter((a, i) => args[i - 1] === "-c" && a.startsWith(`${name}=`)).map(a => a.slice(name.length + 1)).pop();
    const withPostgres = (n: number, postgres: Record<string, unknown>) => { const raw = nNodeConfig(n); raw.postgres = postgres; return raw; };
    const withOmnibus = (n: number, omnibus: Record<string, unknown>) => { const raw = nNodeConfig(n); raw.gitlab.omnibus = omnibus; return raw; };
    // Omnibus 18.4 defaults, 8 Puma workers assumed: 2 × (8 × (4 + 10) + (20 + 1 + 10) + (1 + 10)) = 308 per node,
    // sized for the next block of 4 nodes (3 -> 4, 10 -> 12), + 3 reserved, at least 400.
    const cases: readonly { readonly title: string; readonly config: () => Record<string, unknown>; readonly expected: number }[] = [
        { title: "1 node (GitLab's minimum, 400)", config: () => nNodeConfig(1), expected: 400 },
        { title: "3 nodes", config: () => nNodeConfig(3), expected: 1235 },
        { title: "10 nodes", config: () => nNodeConfig(10), expected: 3699 },
        { title: "3 nodes of 4 Puma workers", config: () => withPostgres(3, { pumaWorkersPerNode: 4 }), expected: 787 },
        { title: "3 nodes, postgres.maxConnections = 250", config: () => withPostgres(3, { maxConnections: 250 }), expected: 250 },
        // 2 × (4 × (6 + 10) + 2 × (10 + 1 + 10) + 11) = 234 per node, × 4.
        { title: "3 nodes, gitlab.omnibus puma 4 × 6, sidekiq 2 × 10", config: () => withOmnibus(3, { puma: { worker_processes: 4, max_threads: 6 }, sidekiq: { concurrency: 10, queue_groups: ["*", "*"] } }), expected: 939 },
    ];
    const evaluations = new Map<string, Evaluation>();
    before(async () => { for (const c of cases) evaluations.set(c.title, await evaluate(c.config(), { passwordFor })); });

    for (const c of cases) {
        it(`${c.title}: -c max_connections=${c.expected} on the server's command line`, () => {
            const e = evaluations.get(c.title)!;
            const args = serverArgs(e);
            assert.equal(setting(args, "max_connections"), String(c.expected), args.join(" "));
            assert.equal(e.cluster.postgres.maxConnections, c.expected);
            // The superuser password's handling is untouched: still by file, never on the command line.
            assert.equal(setting(args, "hba_file"), "/etc/postgresql/gitlab-cluster/pg_hba.conf");
            assert.ok(!(e.byName("gitlab-postgres").inputs.command as string[]).some(a => a.includes(SUPERUSER_PASSWORD)));
        });
    }

    describe("run for real: SHOW max_connections on a PostgreSQL started with the spec's server arguments", () => {
        const pgBin = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").map(v => `/usr/lib/postgresql/${v}/bin`).find(d => fs.existsSync(`${d}/initdb`)) : undefined;
        // pg_hba.conf admits the superuser only by peer: the server and psql run as the postgres user.
        const canRun = process.getuid?.() === 0 && pgBin !== undefined && spawnSync("id", ["postgres"]).status === 0;
        let root = "";
        let server: ChildProcess | undefined;
        after(() => {
            if (server && server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
            if (root) fs.rmSync(root, { recursive: true, force: true });
        });

        it("the server reports the program's max_connections (and its work_mem, statement_timeout, hba_file)", { skip: canRun ? false : "needs root, a postgres user and PostgreSQL binaries", timeout: 180_000 }, async () => {
            root = tempDir("pg-maxconn");
            fs.chmodSync(root, 0o755);
            spawnSync("chown", ["postgres:postgres", root]);
            // Run as the postgres user by uid/gid, not through runuser: a signal then reaches the server itself.
            const ids = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
            const asUser = { uid: ids("-u"), gid: ids("-g"), env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", HOME: root } };
            const asPostgres = (cmd: string, args: readonly string[], timeout: number) => spawnSync(`${pgBin}/${cmd}`, args, { ...asUser, encoding: "utf8", timeout });
            const data = path.join(root, "data");
            const init = asPostgres("initdb", ["-D", data, "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"], 60_000);
            assert.equal(init.status, 0, init.stderr);
            // The container's paths, here: pg_hba.conf is the program's own, as its resource writes it.
            const hbaFile = path.join(root, "pg_hba.conf");
            fs.writeFileSync(hbaFile, String(evaluations.get(cases[1]!.title)!.byName("gitlab-postgres-hba").inputs.stdin), { mode: 0o644 });
            const port = String(await freePort());

            for (const c of cases) {
                const args = serverArgs(evaluations.get(c.title)!).map(a => a.replace("/etc/postgresql/gitlab-cluster/pg_hba.conf", hbaFile));
                // Test only, after the program's settings: a private socket directory, no TCP.
                const argv = ["-D", data, ...args, "-c", "listen_addresses=", "-c", `unix_socket_directories=${root}`, "-c", `port=${port}`];
                let log = "";
                server = spawn(`${pgBin}/postgres`, argv, { ...asUser, stdio: ["ignore", "pipe", "pipe"] });
                server.stdout!.on("data", d => { log += d; });
                server.stderr!.on("data", d => { log += d; });
                const exited = new Promise<void>(resolve => server!.once("exit", () => resolve()));
                try {
                    const deadline = Date.now() + 30_000;
                    while (asPostgres("pg_isready", ["-q", "-h", root, "-p", port], 5_000).status !== 0) {
                        assert.ok(Date.now() < deadline && server.exitCode === null, `${c.title}: the server did not start:\n${log}`);
                        await new Promise(r => setTimeout(r, 200));
                    }
                    const show = asPostgres("psql", ["-X", "-qAt", "-h", root, "-p", port, "-U", "postgres", "-d", "postgres",
                        "-c", "SHOW max_connections", "-c", "SHOW work_mem", "-c", "SHOW statement_timeout", "-c", "SHOW hba_file", "-c", "SHOW password_encryption"], 10_000);
                    assert.equal(show.status, 0, `${c.title}: ${show.stderr}\n${log}`);
                    assert.deepEqual(show.stdout.trim().split("\n"), [String(c.expected), "16MB", "1min", hbaFile, "scram-sha-256"], c.title);
                    assert.equal(server.exitCode, null, `${c.title}: the answer came from another server:\n${log}`);
                } finally {
                    server.kill("SIGINT"); // fast shutdown, as the image's STOPSIGNAL
                    const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>(r => setTimeout(() => r(false), 20_000))]);
                    if (!stopped) { server.kill("SIGKILL"); await exited; }
                }
            }
        });
    });
});
