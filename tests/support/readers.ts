// Runs the programs that read the rendered files: ruby, nginx, sh, shellcheck.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `gitlab-cluster-${prefix}-`));
}

/** The loader the GitLab stand-in image uses too: Ruby against Omnibus-like attribute hashes. */
const GITLAB_RB_LOADER = path.join(__dirname, "..", "..", "..", "tests", "integration", "images", "gitlab-standin", "load_gitlab_rb.rb");

/**
 * Loads gitlab.rb with Ruby against Omnibus-like attribute hashes and returns its settings.
 * Strict: a top-level name Omnibus does not know (a typo such as `gitlab_rials`) fails, as it
 * would in Omnibus.
 */
export function loadGitlabRb(content: string): Record<string, any> { // any: settings are arbitrary JSON from Ruby
    const file = path.join(tempDir("rb"), "gitlab.rb");
    fs.writeFileSync(file, content);
    const out = execFileSync("ruby", [GITLAB_RB_LOADER, "--strict", file], { encoding: "utf8" });
    const settings = JSON.parse(out) as Record<string, any>; // any: as above
    delete settings._standin; // the loader's own report, not a setting
    return settings;
}

export interface ProgramResult { status: number | null; stdout: string; stderr: string }

export function run(cmd: string, args: readonly string[], input?: string): ProgramResult {
    const r = spawnSync(cmd, args, { input, encoding: "utf8" });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Directives some distributions need before a config using `stream {}` (dynamic module). */
export function nginxModulePreamble(): string[] {
    const candidates = ["/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"];
    const found = candidates.find(p => fs.existsSync(p));
    return found ? [`load_module ${found};`] : [];
}

/**
 * `nginx -t` on a config file; returns the result. `extraFiles` are written beside it. `netns`: run
 * in that network namespace (nginx -t binds the listen addresses, which may exist only there).
 */
export function nginxTest(conf: string, extraFiles: Record<string, string> = {}, netns?: string): ProgramResult {
    const dir = tempDir("nginx");
    for (const [name, content] of Object.entries(extraFiles)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), content);
    }
    const file = path.join(dir, "nginx.conf");
    fs.writeFileSync(file, conf);
    // Output to a file: nginx opens /dev/stdout by path, which fails on the socket Node would give it.
    const log = path.join(dir, "nginx-t.log");
    const fd = fs.openSync(log, "w");
    try {
        const command = ["nginx", "-t", "-p", dir, "-c", file];
        const r = netns === undefined ? spawnSync(command[0]!, command.slice(1), { stdio: ["ignore", fd, fd] })
            : spawnSync("ip", ["netns", "exec", netns, ...command], { stdio: ["ignore", fd, fd] });
        if (r.error) throw r.error;
        const output = fs.readFileSync(log, "utf8");
        return { status: r.status, stdout: output, stderr: output };
    } finally {
        fs.closeSync(fd);
    }
}

export function shellcheck(script: string): ProgramResult {
    return run("shellcheck", ["-s", "sh", "-"], script);
}

export function shSyntax(script: string): ProgramResult {
    return run("sh", ["-n"], script);
}
