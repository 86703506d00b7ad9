// Hostile values rendered safely: property tests feeding generated strings (quotes, backslashes,
// newlines, `#{}`, `$()`, backticks, non-ASCII, arbitrary unicode) through each quoting function
// and back out of the real program that reads it: ruby, sh/bash, nginx, redis-server, PostgreSQL.
// Seeded (SECURITY_SEED), bounded runs; values are batched so each program starts a few times only.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { nginxString, redisString, rubyString, rubyValue, shellQuote, sqlIdentifier, sqlString, UnrepresentableValue, type RubyLiteral } from "../../components/render/quote";
import { freePort, waitForPort } from "../support/net";
import { loadGitlabRb, tempDir } from "../support/readers";

export const SEED = Number(process.env.SECURITY_SEED ?? 20250917);

/** fc.assert with the seed in every failure message, so a failing case can be replayed. */
async function check<T extends [unknown, ...unknown[]]>(name: string, property: fc.IAsyncProperty<T> | fc.IProperty<T>, numRuns: number): Promise<void> {
    try {
        await fc.assert(property, { seed: SEED, numRuns, endOnFailure: false, interruptAfterTimeLimit: 20000 });
    } catch (err) {
        throw new Error(`${name} failed with SECURITY_SEED=${SEED}: ${(err as Error).message}`);
    }
}

const FRAGMENTS = ["'", '"', "\\", "\\\\", "\n", "\r\n", "\r", "\t", "#{x}", "#{`id`}", "$(id)", "${HOME}", "$", "`id`", "%s", "%n", ";", "{", "}",
    "\\'", "'\\''", "\\x41", "\\n", "é", "日本語", "😀", "\u2028", "\u0085", "\u00a0", "\ufeff", "\x7f", "\x1b[31m", "\0", " ", "--", "=begin\n", "__END__\n"];

/** A hostile string: shell, Ruby, nginx and SQL metacharacters mixed with arbitrary unicode. */
const hostile = fc.array(fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...FRAGMENTS) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 6 }) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", maxLength: 8 }) },
), { maxLength: 10 }).map(parts => parts.join(""));
const batch = (arb: fc.Arbitrary<string>, maxLength: number) => fc.array(arb, { minLength: Math.ceil(maxLength / 2), maxLength });
const noNul = hostile.map(s => s.replace(/\0/g, ""));

function refusedFor(language: string, value: string, reason: RegExp): void {
    assert.ok(reason.test(value), `${language} refused ${JSON.stringify(value)}, which it can hold`);
}

/** Splits each value into its literal, or records its refusal (which must be an UnrepresentableValue). */
function quoteAll(values: readonly string[], quote: (v: string) => string): { kept: string[]; literals: string[]; refused: string[] } {
    const kept: string[] = [], literals: string[] = [], refused: string[] = [];
    for (const v of values) {
        try {
            literals.push(quote(v));
            kept.push(v);
        } catch (err) {
            assert.ok(err instanceof UnrepresentableValue, `${JSON.stringify(v)}: ${String(err)}`);
            refused.push(v);
        }
    }
    return { kept, literals, refused };
}


/** Waits until the server `child` accepts connections on 127.0.0.1:port (bounded), with its log on failure. */
async function waitForServer(port: number, child: ChildProcess, log: () => string): Promise<void> {
    await waitForPort(port, 5000, () => (child.exitCode !== null ? `exited with ${child.exitCode}: ${log()}` : undefined))
        .catch((err: Error) => { throw new Error(`${err.message}: ${log()}`); });
}

async function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise(resolve => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise(r => setTimeout(r, 3000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

const started: ChildProcess[] = [];
after(async () => { for (const c of started) await stop(c); });

describe("rubyString: gitlab.rb values come back exactly from Ruby", () => {
    it("every hostile value, batched into one gitlab.rb per run, as a scalar and inside an array", async () => {
        await check("rubyString", fc.property(batch(hostile, 60), values => {
            const { kept, literals, refused } = quoteAll(values, rubyString);
            for (const v of refused) refusedFor("Ruby", v, /\0/);
            const lines = literals.map((lit, i) => `gitlab_rails['v${i}'] = ${lit}`);
            lines.push(`nginx['all'] = ${rubyValue(kept)}`);
            const settings = loadGitlabRb(`# hostile values\n${lines.join("\n")}\n`);
            kept.forEach((v, i) => assert.equal(settings.gitlab_rails?.[`v${i}`], v, `literal ${literals[i]}`));
            assert.deepEqual(settings.nginx.all, kept);
        }), 12);
    });

    it("a CR LF pair survives (Ruby's lexer folds it to LF inside a plain single-quoted literal)", () => {
        const settings = loadGitlabRb(`gitlab_rails['crlf'] = ${rubyString("a\r\nb\r")}\n`);
        assert.equal(settings.gitlab_rails.crlf, "a\r\nb\r");
    });
});

/** JSON-like trees (what gitlab.omnibus holds): hostile strings as values and as hash keys, numbers, true/false, null. */
const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(1e21, -1e-7, 5e-324, 2 ** 53 + 2, 0.1 + 0.2))
    .filter(n => !Object.is(n, -0)); // JSON has no -0 either: Ruby reads it as 0
const tree = fc.letrec<{ node: unknown }>(tie => ({
    node: fc.oneof({ depthSize: "small", withCrossShrink: true },
        noNul, number, fc.boolean(), fc.constant(null),
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(noNul, tie("node"), { maxKeys: 4 })),
})).node;

describe("rubyValue: nested hashes and arrays come back exactly from Ruby", () => {
    it("every generated tree, batched into one gitlab.rb per run, as `name['key'] = <literal>`", async () => {
        await check("rubyValue (trees)", fc.property(fc.array(tree, { minLength: 10, maxLength: 30 }), values => {
            const lines = values.map((v, i) => `gitlab_rails['v${i}'] = ${rubyValue(v as RubyLiteral)}`);
            const settings = loadGitlabRb(`# hostile trees\n${lines.join("\n")}\n`);
            // Through JSON, as a stack's config arrives: fast-check builds some maps without a prototype.
            values.forEach((v, i) => assert.deepEqual(settings.gitlab_rails?.[`v${i}`], JSON.parse(JSON.stringify(v)), lines[i]));
        }), 12);
    });

    it("refuses a NUL anywhere (in a key or a value), and says where, with UnrepresentableValue", () => {
        const cases: [RubyLiteral, string][] = [
            [{ main: { password: "a\0b" } }, "main.password: cannot be written as a Ruby string: it contains a NUL character"],
            [[1, { "odd key": ["\0"] }], '[1]["odd key"][0]: cannot be written as a Ruby string: it contains a NUL character'],
            [{ a: { "k\0": 1 } }, 'a: cannot be written as a Ruby value: the key "k\\u0000" contains a NUL character'],
        ];
        for (const [value, message] of cases) assert.throws(() => rubyValue(value), (e: unknown) => e instanceof UnrepresentableValue && e.message === message, message);
    });

    it("refuses what JSON cannot hold: non-finite numbers, undefined, functions, class instances, deep nesting", () => {
        const deep: RubyLiteral = Array.from({ length: 40 }).reduce<RubyLiteral>(inner => [inner], 1);
        for (const value of [Number.NaN, Infinity, { a: [undefined] }, { f: () => 1 }, { d: new Date(0) }, new Map(), deep] as unknown[]) {
            assert.throws(() => rubyValue(value as RubyLiteral), UnrepresentableValue, String(value));
        }
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        assert.throws(() => rubyValue(cyclic as RubyLiteral), UnrepresentableValue);
    });
});

describe("shellQuote: scripts get each value back exactly from sh and bash", () => {
    for (const shell of ["sh", "bash"].filter(s => spawnSync("sh", ["-c", `command -v ${s}`]).status === 0)) {
        it(`${shell}: printf %s <quoted> for every hostile value, batched into one ${shell} -c per run`, async () => {
            await check(`shellQuote (${shell})`, fc.property(batch(hostile, 60), values => {
                const { kept, literals, refused } = quoteAll(values, shellQuote);
                for (const v of refused) refusedFor("shell", v, /\0/);
                const script = literals.map(lit => `printf %s ${lit}; printf '\\000'`).join("\n");
                const out = execFileSync(shell, ["-c", script]);
                const got: string[] = [];
                let start = 0;
                for (let i = 0; i < out.length; i++) if (out[i] === 0) { got.push(out.subarray(start, i).toString("utf8")); start = i + 1; }
                assert.deepEqual(got, kept);
            }), 15);
        });
    }
});

describe("nginxString: nginx serves each value back exactly, or it is refused", () => {
    const dir = tempDir("nginx-echo");
    it("return 200 <quoted>; served by a real nginx on 127.0.0.1, fetched over HTTP", async () => {
        let representable = 0;
        const printable = fc.string({ unit: "grapheme", maxLength: 20 }).map(s => s.replace(/[\x00-\x1f\x7f$]/g, "")); // eslint-disable-line no-control-regex -- see nginxString
        await check("nginxString", fc.asyncProperty(batch(fc.oneof({ weight: 1, arbitrary: hostile }, { weight: 2, arbitrary: printable }), 40), async values => {
            const { kept, literals, refused } = quoteAll(values, nginxString);
            for (const v of refused) refusedFor("nginx", v, /[\x00-\x1f\x7f$]/); // eslint-disable-line no-control-regex -- see nginxString
            representable += kept.length;
            if (kept.length === 0) return;
            const port = await freePort();
            for (const sub of ["tmp", "logs"]) fs.mkdirSync(path.join(dir, sub), { recursive: true });
            const conf = [
                "daemon off;", "master_process off;", "worker_processes 1;",
                `pid ${dir}/nginx.pid;`, `error_log ${dir}/logs/error.log;`,
                "events { worker_connections 64; }",
                "http {",
                "    access_log off;",
                ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(t => `    ${t}_temp_path ${dir}/tmp/${t};`),
                "    default_type application/octet-stream;",
                "    server {",
                `        listen 127.0.0.1:${port};`,
                ...literals.map((lit, i) => `        location = /v${i} { return 200 ${lit}; }`),
                "    }",
                "}",
                "",
            ].join("\n");
            fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
            const child = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: "ignore" });
            started.push(child);
            try {
                await waitForServer(port, child, () => fs.existsSync(`${dir}/logs/error.log`) ? fs.readFileSync(`${dir}/logs/error.log`, "utf8") : "");
                for (const [i, v] of kept.entries()) {
                    const body = await new Promise<Buffer>((resolve, reject) => {
                        http.get({ host: "127.0.0.1", port, path: `/v${i}`, agent: false }, res => {
                            const chunks: Buffer[] = [];
                            res.on("data", (c: Buffer) => chunks.push(c));
                            res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`status ${res.statusCode}`))));
                        }).on("error", reject);
                    });
                    assert.equal(body.toString("utf8"), v, `literal ${literals[i]}`);
                }
            } finally {
                await stop(child);
            }
        }), 6);
        assert.ok(representable >= 50, `only ${representable} values reached nginx`);
    });

    it("refuses newlines, control characters and '$' with UnrepresentableValue", () => {
        for (const v of ["a\nb", "a\rb", "tab\there", "\x1b", "\x7f", "cost $5", "${host}"]) {
            assert.throws(() => nginxString(v), UnrepresentableValue, JSON.stringify(v));
        }
    });
});

/** One RESP request on a fresh connection; returns the first reply line. */
async function redisCommand(port: number, args: readonly string[]): Promise<string> {
    const parts = args.map(a => Buffer.from(a, "utf8"));
    const request = Buffer.concat([Buffer.from(`*${parts.length}\r\n`), ...parts.flatMap(p => [Buffer.from(`$${p.length}\r\n`), p, Buffer.from("\r\n")])]);
    return new Promise((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
        let reply = "";
        socket.setTimeout(3000, () => { socket.destroy(); reject(new Error("redis did not answer")); });
        socket.on("data", d => {
            reply += d.toString("latin1");
            if (reply.includes("\r\n")) { socket.destroy(); resolve(reply.split("\r\n")[0]!); }
        });
        socket.on("error", reject);
    });
}

const redisServer = spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;

async function startRedis(confLines: readonly string[]): Promise<{ port: number; child: ChildProcess }> {
    const dir = tempDir("redis");
    const port = await freePort();
    const conf = path.join(dir, "redis.conf");
    fs.writeFileSync(conf, `${confLines.join("\n")}\n`);
    const child = spawn("redis-server", [conf, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", path.join(dir, "log")], { stdio: "ignore" });
    started.push(child);
    await waitForServer(port, child, () => fs.existsSync(path.join(dir, "log")) ? fs.readFileSync(path.join(dir, "log"), "utf8") : "");
    return { port, child };
}

describe("redisString: redis-server reads the password exactly", { skip: redisServer ? false : "redis-server is not installed (apt-get install redis-server)" }, () => {
    const nonEmpty = hostile.filter(s => s.length > 0);

    it("requirepass <quoted> in redis.conf: AUTH with the raw value succeeds, a wrong one fails (one server per value)", async () => {
        await check("redisString requirepass", fc.asyncProperty(nonEmpty, async value => {
            const { port, child } = await startRedis([`requirepass ${redisString(value)}`]);
            try {
                assert.match(await redisCommand(port, ["PING"]), /^-NOAUTH/, "the password is required");
                assert.match(await redisCommand(port, ["AUTH", `${value}x`]), /^-WRONGPASS/);
                assert.equal(await redisCommand(port, ["AUTH", value]), "+OK", `requirepass ${redisString(value)}`);
            } finally {
                await stop(child);
            }
        }), 12);
    });

    it("50 more values in one server: each as an ACL user's password written with the same escapes", async () => {
        const values = fc.sample(nonEmpty, { seed: SEED, numRuns: 50 });
        const { port, child } = await startRedis(values.map((v, i) => `user u${i} on ">${redisString(v).slice(1)} ~* +@all`));
        try {
            for (const [i, v] of values.entries()) assert.equal(await redisCommand(port, ["AUTH", `u${i}`, v]), "+OK", `${JSON.stringify(v)} as ${redisString(v)}`);
        } finally {
            await stop(child);
        }
    });
});

/** PostgreSQL's binaries, when installed (Debian keeps them off PATH). */
function postgresBin(): string | undefined {
    const fromPath = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).stdout.trim();
    if (fromPath) return path.dirname(fs.realpathSync(fromPath));
    const debian = "/usr/lib/postgresql";
    if (!fs.existsSync(debian)) return undefined;
    return fs.readdirSync(debian).map(v => path.join(debian, v, "bin")).find(b => fs.existsSync(path.join(b, "initdb")));
}

describe("sqlString / sqlIdentifier", () => {
    it("doubles every quote and changes nothing else (the rule of standard_conforming_strings)", () => {
        fc.assert(fc.property(noNul, v => {
            const lit = sqlString(v);
            assert.ok(lit.startsWith("'") && lit.endsWith("'"));
            const inner = lit.slice(1, -1);
            assert.equal(inner.replace(/''/g, "'"), v);
            assert.ok(!inner.replace(/''/g, "").includes("'"), "no lone quote inside");
            assert.equal(sqlIdentifier(v).slice(1, -1).replace(/""/g, '"'), v);
        }), { seed: SEED, numRuns: 500 });
        assert.throws(() => sqlString("a\0b"), UnrepresentableValue);
    });

    const bin = postgresBin();
    const asPostgres = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
    const usable = bin !== undefined && (asPostgres.length === 0 || spawnSync("id", ["postgres"]).status === 0);
    it("psql -f - (as the role SQL is run) reads each literal back byte for byte from a real PostgreSQL",
        { skip: usable ? false : "PostgreSQL is not installed (apt-get install postgresql)" }, async () => {
            const dir = tempDir("pg");
            fs.chmodSync(dir, 0o755);
            if (asPostgres.length > 0) execFileSync("chown", ["postgres", dir]);
            const data = path.join(dir, "data");
            const run = (cmd: string, args: string[], input?: string) => {
                const argv = [...asPostgres, path.join(bin!, cmd), ...args];
                return execFileSync(argv[0]!, argv.slice(1), { input, encoding: "utf8", env: { ...process.env, PGCLIENTENCODING: "UTF8" } });
            };
            run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
            const port = String(await freePort());
            run("pg_ctl", ["-D", data, "-w", "-s", "-l", path.join(dir, "log"), "-o", `-k ${dir} -c listen_addresses= -p ${port} -F`, "start"]);
            try {
                const values = fc.sample(noNul, { seed: SEED, numRuns: 300 });
                const sql = ["\\set ON_ERROR_STOP on", "SET standard_conforming_strings = on;",
                    ...values.map(v => `SELECT 'hex:' || encode(convert_to(${sqlString(v)}, 'UTF8'), 'hex') AS ${sqlIdentifier(v.slice(0, 20) || "empty")};`), ""].join("\n");
                const out = run("psql", ["-X", "-q", "-At", "-h", dir, "-p", port, "-U", "postgres", "-d", "postgres", "-f", "-"], sql).split("\n").filter(l => l !== "");
                assert.deepEqual(out, values.map(v => `hex:${Buffer.from(v, "utf8").toString("hex")}`));
            } finally {
                run("pg_ctl", ["-D", data, "-w", "-s", "-m", "immediate", "stop"]);
            }
        });
});
