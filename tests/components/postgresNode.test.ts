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
import { threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { shellcheck, shSyntax, tempDir } from "../support/readers";
import { freePort } from "../support/tls";

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
