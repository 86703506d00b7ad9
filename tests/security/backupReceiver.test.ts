// Security review, issue 15, M4: the off-host backup key must not be able to destroy the
// off-host copies. The real receiver script, fed the way sshd feeds a forced command, and the
// authorized_keys line read by a real sshd: append-only, bounded in size and free space, no
// prune verb, and usable only from the backup node's address.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { renderAuthorizedKeyLine, renderReceiverScript } from "../../components/render/backup";
import { freePort, waitForPort } from "../support/net";
import { tempDir } from "../support/readers";

const NAME = "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar";

function receive(receiver: string, command: string, input = "") {
    const r = spawnSync("sh", ["-c", receiver], { encoding: "utf8", env: { ...process.env, SSH_ORIGINAL_COMMAND: command }, input });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function store(label: string): string {
    return path.join(tempDir(label), "store");
}

describe("M4: the receiver is append-only", () => {
    it("stores a new archive of exactly the announced size, 0600", () => {
        const dir = store("recv-put");
        const r = receive(renderReceiverScript(dir), `put ${NAME} 13`, "archive bytes");
        assert.equal(r.status, 0, r.stderr);
        assert.equal(fs.readFileSync(path.join(dir, NAME), "utf8"), "archive bytes");
        assert.equal(fs.statSync(path.join(dir, NAME)).mode & 0o777, 0o600);
        assert.deepEqual(fs.readdirSync(dir), [NAME], "no part file left");
    });

    it("refuses to overwrite an existing copy", () => {
        const dir = store("recv-overwrite");
        const receiver = renderReceiverScript(dir);
        assert.equal(receive(receiver, `put ${NAME} 4`, "good").status, 0);
        const r = receive(receiver, `put ${NAME} 4`, "evil");
        assert.equal(fs.readFileSync(path.join(dir, NAME), "utf8"), "good", "the copy was overwritten");
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /^refused: .*never overwritten/);
    });

    it("has no prune verb: `prune 0` deletes nothing", () => {
        const dir = store("recv-prune");
        fs.mkdirSync(dir, { recursive: true });
        const copy = path.join(dir, NAME);
        fs.writeFileSync(copy, "three days old");
        fs.utimesSync(copy, new Date(Date.now() - 3 * 86400e3), new Date(Date.now() - 3 * 86400e3));
        for (const verb of ["prune 0", "prune 7", "rm -rf /", "", "put", `put ${NAME}`, `put ${NAME} 1 extra`]) {
            const r = receive(renderReceiverScript(dir), verb, "x");
            assert.equal(fs.existsSync(copy) && fs.readFileSync(copy, "utf8"), "three days old", `'${verb}' destroyed the copy`);
            assert.notEqual(r.status, 0, verb);
            assert.match(r.stderr, /^refused/, verb);
        }
    });

    it("refuses an archive over the size limit, and one that would eat the free-space margin, before reading it", () => {
        const dir = store("recv-size");
        const big = receive(renderReceiverScript(dir, { maxArchiveBytes: 10, minFreeBytes: 0 }), `put ${NAME} 11`, "x".repeat(11));
        assert.ok(!fs.existsSync(path.join(dir, NAME)), "an archive over the limit was stored");
        assert.notEqual(big.status, 0);
        assert.match(big.stderr, /^refused: .*11 bytes is more than the 10 allowed/);
        const margin = receive(renderReceiverScript(dir, { maxArchiveBytes: 1e6, minFreeBytes: Number.MAX_SAFE_INTEGER }), `put ${NAME} 5`, "small");
        assert.notEqual(margin.status, 0);
        assert.match(margin.stderr, /^refused: .*would leave less than/);
        const huge = receive(renderReceiverScript(dir), `put ${NAME} 99999999999999999999999`, "");
        assert.match(huge.stderr, /^refused: .*more than/);
        assert.deepEqual(fs.readdirSync(dir), [], "nothing stored, no part file left");
    });

    it("refuses an upload shorter or longer than announced, and bad names", () => {
        const dir = store("recv-short");
        const receiver = renderReceiverScript(dir);
        assert.match(receive(receiver, `put ${NAME} 100`, "only ten b").stderr, /^refused: .*received 10 of 100 bytes/);
        assert.match(receive(receiver, `put ${NAME} 3`, "four").stderr, /^refused: .*more than 3 bytes sent/);
        for (const name of ["../../etc/passwd_gitlab_backup.tar", "x.sh", ".hidden_gitlab_etc.tar", "a*_gitlab_backup.tar", "a b_gitlab_backup.tar"]) {
            const r = receive(receiver, `put ${name} 1`, "x");
            assert.notEqual(r.status, 0, name);
            assert.match(r.stderr, /^refused/, name);
        }
        assert.deepEqual(fs.readdirSync(dir), []);
    });
});

describe("issue 12: a data target with a separate secrets target never holds the decryption keys", () => {
    const ETC = "1700000000_2023_11_14_18.4.1-ce_gitlab_etc.tar";

    it("the data target's receiver stores data archives and refuses /etc/gitlab archives", () => {
        const dir = store("recv-data-only");
        const receiver = renderReceiverScript(dir, undefined, ["data"]);
        assert.equal(receive(receiver, `put ${NAME} 4`, "data").status, 0);
        const r = receive(receiver, `put ${ETC} 4`, "keys");
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /^refused: not a data archive name: this host takes no \*_gitlab_etc\.tar, which go to backup\.secretsTarget/);
        assert.deepEqual(fs.readdirSync(dir), [NAME]);
    });

    it("the secrets target's receiver stores /etc/gitlab archives and refuses data archives", () => {
        const dir = store("recv-secrets-only");
        const receiver = renderReceiverScript(dir, undefined, ["secrets"]);
        assert.equal(receive(receiver, `put ${ETC} 4`, "keys").status, 0);
        const r = receive(receiver, `put ${NAME} 4`, "data");
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /^refused: not a \/etc\/gitlab archive name/);
        assert.deepEqual(fs.readdirSync(dir), [ETC]);
    });

    it("a receiver for no archive kind is not rendered", () => {
        assert.throws(() => renderReceiverScript("/srv/x", undefined, []), /at least one archive kind/);
    });
});


const SSHD = ["/usr/sbin/sshd", "/usr/bin/sshd"].find(p => fs.existsSync(p));

describe("M4: the authorized_keys line, read by a real sshd", { skip: SSHD === undefined ? "no sshd on this machine (Debian: openssh-server)" : false }, () => {
    let dir: string;
    let port: number;
    let sshd: ChildProcess;
    let key: string;
    let publicKey: string;
    let receiverPath: string;
    let storeDir: string;
    const authorizedKeys = () => path.join(dir, "authorized_keys");

    before(async () => {
        dir = tempDir("sshd");
        storeDir = path.join(dir, "store");
        receiverPath = path.join(dir, "gitlab-cluster-backup-receive");
        fs.writeFileSync(receiverPath, renderReceiverScript(storeDir), { mode: 0o755 });
        for (const k of ["host", "client"]) assert.equal(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, k)]).status, 0);
        key = path.join(dir, "client");
        publicKey = fs.readFileSync(`${key}.pub`, "utf8");
        fs.writeFileSync(authorizedKeys(), "");
        port = await freePort();
        fs.writeFileSync(path.join(dir, "sshd_config"), [
            `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${path.join(dir, "host")}`, `PidFile ${path.join(dir, "sshd.pid")}`,
            `AuthorizedKeysFile ${authorizedKeys()}`, "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "LogLevel VERBOSE", "",
        ].join("\n"));
        // sshd refuses to start without its privilege separation directory.
        fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        const check = spawnSync(SSHD!, ["-t", "-f", path.join(dir, "sshd_config")], { encoding: "utf8" });
        assert.equal(check.status, 0, check.stderr);
        sshd = spawn(SSHD!, ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
        await waitForPort(port, 5000);
    });

    after(() => { sshd?.kill(); });

    function ssh(command: string, input = "") {
        const r = spawnSync("ssh", ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", String(port), "root@127.0.0.1", command],
        { encoding: "utf8", input, timeout: 20000 });
        return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    }

    it("from another address, the key does not log in at all", () => {
        fs.writeFileSync(authorizedKeys(), `${renderAuthorizedKeyLine(publicKey, "10.0.0.11", receiverPath)}\n`);
        const r = ssh(`put ${NAME} 1`, "x");
        assert.equal(r.status, 255, `logged in from 127.0.0.1 with from="10.0.0.11": ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /Permission denied/);
    });

    it("from the backup node's address, it gets only the receiver: put stores, prune and a shell are refused", () => {
        fs.writeFileSync(authorizedKeys(), `${renderAuthorizedKeyLine(publicKey, "127.0.0.1", receiverPath)}\n`);
        const put = ssh(`put ${NAME} 5`, "hello");
        assert.equal(put.status, 0, put.stderr);
        assert.match(put.stdout, /stored/);
        assert.equal(fs.readFileSync(path.join(storeDir, NAME), "utf8"), "hello");
        for (const command of ["prune 0", "cat /etc/shadow", `put ${NAME} 4`]) {
            const r = ssh(command, "evil");
            assert.equal(r.status, 1, command);
            assert.match(r.stderr, /refused/, command);
        }
        assert.equal(fs.readFileSync(path.join(storeDir, NAME), "utf8"), "hello");
    });
});
