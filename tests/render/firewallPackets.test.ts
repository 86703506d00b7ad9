// Real packets through the data host's firewall. Network namespaces made by this test stand
// for four machines: the data host (Docker's FORWARD/DOCKER-USER/DNAT rules, built as Docker
// builds them for a published port), one container behind Docker's bridge, an allowed GitLab
// host, and a stranger on another LAN segment. A TCP server in the container answers "PONG";
// the clients connect through the published address, straight to the container's address (a
// route via the data host), and through a userland proxy (docker-proxy, Docker's path for IPv6
// on the IPv4-only default bridge). Nothing leaves the namespaces; every wait is bounded.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { renderFirewallScript, type FirewallInput } from "../../components/render/firewall";
import { inNs, must, netnsSkip, NetnsLab } from "../support/netns";
import { tempDir } from "../support/readers";

const PUBLISHED_PORT = 16379;
const CONTAINER_PORT = 6379;
const prefix = `glcfw${process.pid % 100000}`;
const ns = { data: `${prefix}d`, ctr: `${prefix}c`, allowed: `${prefix}a`, stranger: `${prefix}s` };
const addr = {
    v4: { published: "10.77.0.21", container: "172.17.0.2", allowed: "10.77.1.11", stranger: "10.77.2.99" },
    v6: { published: "fd77::21", container: "fd00:17::2", allowed: "fd77:1::11", stranger: "fd77:2::99" },
};

const skip = netnsSkip(`${prefix}probe`);
const lab = new NetnsLab(Object.values(ns));

async function buildTopology() {
    await lab.create();
    lab.link(ns.data, "docker0", ns.ctr, "eth0");
    lab.link(ns.data, "lan-a", ns.allowed, "eth0");
    lab.link(ns.data, "lan-s", ns.stranger, "eth0");
    must(ns.data, `set -e
ip link set lo up; ip link set docker0 up; ip link set lan-a up; ip link set lan-s up
ip addr add ${addr.v4.published}/32 dev lo; ip addr add ${addr.v6.published}/128 dev lo
ip addr add 172.17.0.1/16 dev docker0; ip addr add fd00:17::1/64 dev docker0 nodad
ip addr add 10.77.1.1/24 dev lan-a; ip addr add fd77:1::1/64 dev lan-a nodad
ip addr add 10.77.2.1/24 dev lan-s; ip addr add fd77:2::1/64 dev lan-s nodad
sysctl -qw net.ipv4.ip_forward=1; sysctl -qw net.ipv6.conf.all.forwarding=1`);
    const host = (n: string, v4: string, v4gw: string, v6: string, v6gw: string, v6len: number) => must(n, `set -e
ip link set lo up; ip link set eth0 up
ip addr add ${v4} dev eth0; ip route add default via ${v4gw}
ip addr add ${v6}/${v6len} dev eth0 nodad; ip -6 route add default via ${v6gw}`);
    host(ns.ctr, `${addr.v4.container}/16`, "172.17.0.1", addr.v6.container, "fd00:17::1", 64);
    host(ns.allowed, `${addr.v4.allowed}/24`, "10.77.1.1", addr.v6.allowed, "fd77:1::1", 64);
    host(ns.stranger, `${addr.v4.stranger}/24`, "10.77.2.1", addr.v6.stranger, "fd77:2::1", 64);
}

/**
 * The rules Docker (20.10 to 27, iptables mode) creates on start for the default bridge and one
 * container publishing CONTAINER_PORT on `published`:PUBLISHED_PORT. As Docker does, the
 * DOCKER-USER chain is created if missing (never flushed) and FORWARD's jump to it is moved first.
 */
function dockerRules(tool: "iptables" | "ip6tables", published: string, container: string, bridge: string): string {
    const host = tool === "iptables" ? "/32" : "/128";
    const loop = tool === "iptables" ? "127.0.0.0/8" : "::1/128";
    return `set -e
${tool} -t nat -N DOCKER
${tool} -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
${tool} -t nat -A OUTPUT ! -d ${loop} -m addrtype --dst-type LOCAL -j DOCKER
${tool} -t nat -A POSTROUTING -s ${bridge} ! -o docker0 -j MASQUERADE
${tool} -t nat -A DOCKER -i docker0 -j RETURN
${tool} -t nat -A DOCKER -d ${published}${host} ! -i docker0 -p tcp -m tcp --dport ${PUBLISHED_PORT} -j DNAT --to-destination ${tool === "iptables" ? container : `[${container}]`}:${CONTAINER_PORT}
${tool} -N DOCKER
${tool} -N DOCKER-ISOLATION-STAGE-1
${tool} -N DOCKER-ISOLATION-STAGE-2
${tool} -N DOCKER-USER 2>/dev/null || true
${tool} -C DOCKER-USER -j RETURN 2>/dev/null || ${tool} -A DOCKER-USER -j RETURN
${tool} -P FORWARD DROP
${tool} -A FORWARD -j DOCKER-ISOLATION-STAGE-1
${tool} -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
${tool} -A FORWARD -o docker0 -j DOCKER
${tool} -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
${tool} -A FORWARD -i docker0 -o docker0 -j ACCEPT
${tool} -D FORWARD -j DOCKER-USER 2>/dev/null || true
${tool} -I FORWARD -j DOCKER-USER
${tool} -A DOCKER -d ${container}${host} ! -i docker0 -o docker0 -p tcp -m tcp --dport ${CONTAINER_PORT} -j ACCEPT
${tool} -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
${tool} -A DOCKER-ISOLATION-STAGE-1 -j RETURN
${tool} -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
${tool} -A DOCKER-ISOLATION-STAGE-2 -j RETURN
`;
}

const SERVER = `require("net").createServer(s => s.end("PONG\\n")).listen(${CONTAINER_PORT}, "::", () => console.log("listening"));`;
// Docker's userland proxy: accepts on the published address and connects to the container.
const PROXY = (listen: string, to: string) => `const net = require("net");
net.createServer(c => { const u = net.connect(${CONTAINER_PORT}, "${to}"); c.pipe(u).pipe(c); u.on("error", () => c.destroy()); c.on("error", () => u.destroy()); })
  .listen(${PUBLISHED_PORT}, "${listen}", () => console.log("listening"));`;
const CLIENT = `const [host, port] = process.argv.slice(1);
const s = require("net").connect({ host, port: Number(port) });
const done = r => { console.log(r); process.exit(0); };
setTimeout(() => done("timeout"), 1500).unref();
let got = ""; s.on("data", d => { got += d; if (got.includes("PONG")) done("connected"); });
s.on("error", e => done("error " + e.code));`;

/** What a client in `from` sees when it connects to host:port: connected, timeout or error. */
function connect(from: string, host: string, port: number): string {
    const r = spawnSync("ip", ["netns", "exec", from, process.execPath, "-e", CLIENT, host, String(port)], { encoding: "utf8", timeout: 10_000 });
    return r.stdout.trim() || `failed: ${r.stderr}`;
}

/**
 * For checks that expect a connection: up to three tries, because a fresh namespace's first
 * IPv6 packets can wait out neighbour discovery. A firewall that drops the host fails all three.
 */
function connects(from: string, host: string, port: number): string {
    let result = "";
    for (let i = 0; i < 3 && result !== "connected"; i++) result = connect(from, host, port);
    return result;
}

function applyFirewall(input: FirewallInput, ...args: string[]) {
    const file = path.join(tempDir("fwp"), "firewall.sh");
    fs.writeFileSync(file, renderFirewallScript(input));
    return inNs(ns.data, `sh ${file} ${args.join(" ")}`);
}

const v4Input: FirewallInput = {
    service: "redis", address: addr.v4.published, port: PUBLISHED_PORT, containerPort: CONTAINER_PORT,
    bridgeSubnet: "172.17.0.0/16", sources: [`${addr.v4.allowed}/32`],
};
const v6Input: FirewallInput = { ...v4Input, address: addr.v6.published, sources: [`${addr.v6.allowed}/128`] };

describe("data-host firewall, crossed by real packets (IPv4, Docker's DNAT)", { skip }, () => {
    before(async () => {
        await buildTopology();
        must(ns.data, dockerRules("iptables", addr.v4.published, addr.v4.container, "172.17.0.0/16"));
        await lab.serve(ns.ctr, SERVER);
    });
    after(() => lab.teardown());

    it("without the firewall, both hosts connect (the topology works)", () => {
        assert.equal(connects(ns.allowed, addr.v4.published, PUBLISHED_PORT), "connected");
        assert.equal(connects(ns.stranger, addr.v4.published, PUBLISHED_PORT), "connected");
    });

    it("with it, the GitLab host connects and the stranger times out, also after a second run", () => {
        for (const round of [1, 2]) {
            const r = applyFirewall(v4Input);
            assert.equal(r.status, 0, r.stderr);
            assert.equal(connects(ns.allowed, addr.v4.published, PUBLISHED_PORT), "connected", `allowed host, run ${round}`);
            assert.equal(connect(ns.stranger, addr.v4.published, PUBLISHED_PORT), "timeout", `stranger, run ${round}`);
        }
        const rules = must(ns.data, "iptables -S");
        assert.equal(applyFirewall(v4Input).status, 0);
        assert.equal(must(ns.data, "iptables -S"), rules, "a third run leaves the same rules");
    });

    it("another published port whose container listens on the same inside port is not this chain's business", () => {
        // A balancer's nginx beside a GitLab node: both listen on 80 inside their containers.
        must(ns.data, `iptables -t nat -A DOCKER -d ${addr.v4.published}/32 ! -i docker0 -p tcp -m tcp --dport ${PUBLISHED_PORT + 1} -j DNAT --to-destination ${addr.v4.container}:${CONTAINER_PORT}`);
        assert.equal(connects(ns.stranger, addr.v4.published, PUBLISHED_PORT + 1), "connected");
        assert.equal(connect(ns.stranger, addr.v4.published, PUBLISHED_PORT), "timeout");
    });

    it("a stranger that routes to the container's own address via the data host times out", () => {
        must(ns.stranger, `ip route add 172.17.0.0/16 via 10.77.2.1`);
        must(ns.allowed, `ip route add 172.17.0.0/16 via 10.77.1.1`);
        assert.equal(connect(ns.stranger, addr.v4.container, CONTAINER_PORT), "timeout");
        assert.equal(connects(ns.allowed, addr.v4.container, CONTAINER_PORT), "connected", "Docker itself admits routed traffic from allowed hosts");
    });
});

describe("data-host firewall at boot, before Docker starts (IPv4)", { skip }, () => {
    before(async () => {
        await buildTopology();
        await lab.serve(ns.ctr, SERVER);
    });
    after(() => lab.teardown());

    it("installing on a host whose FORWARD does not jump to DOCKER-USER fails and says why", () => {
        const r = applyFirewall(v4Input);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /FORWARD does not jump to DOCKER-USER/);
    });

    it("the boot run goes first; Docker starts after it and the stranger never gets in", () => {
        const r = applyFirewall(v4Input, "--boot");
        assert.equal(r.status, 0, r.stderr);
        must(ns.data, dockerRules("iptables", addr.v4.published, addr.v4.container, "172.17.0.0/16"));
        assert.equal(connect(ns.stranger, addr.v4.published, PUBLISHED_PORT), "timeout");
        assert.equal(connects(ns.allowed, addr.v4.published, PUBLISHED_PORT), "connected");
    });
});

describe("data-host firewall, crossed by real packets (IPv6)", { skip }, () => {
    before(async () => {
        await buildTopology();
        must(ns.data, dockerRules("iptables", addr.v4.published, addr.v4.container, "172.17.0.0/16"));
        must(ns.data, dockerRules("ip6tables", addr.v6.published, addr.v6.container, "fd00:17::/64"));
        await lab.serve(ns.ctr, SERVER);
    });
    after(() => lab.teardown());

    it("through Docker's IPv6 DNAT: the GitLab host connects, the stranger times out", () => {
        assert.equal(connects(ns.stranger, addr.v6.published, PUBLISHED_PORT), "connected", "the topology works");
        const r = applyFirewall(v6Input);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(connects(ns.allowed, addr.v6.published, PUBLISHED_PORT), "connected");
        assert.equal(connect(ns.stranger, addr.v6.published, PUBLISHED_PORT), "timeout");
    });

    it("through the userland proxy on another port: the stranger times out", async () => {
        // Docker's IPv4-only default bridge: docker-proxy accepts IPv6 and connects over IPv4,
        // so the packets never cross FORWARD.
        await lab.serve(ns.data, PROXY(addr.v6.published, addr.v4.container));
        const proxied = { ...v6Input, port: PUBLISHED_PORT };
        must(ns.data, `ip6tables -t nat -F DOCKER`);
        assert.equal(applyFirewall(proxied).status, 0);
        assert.equal(connects(ns.allowed, addr.v6.published, PUBLISHED_PORT), "connected");
        assert.equal(connect(ns.stranger, addr.v6.published, PUBLISHED_PORT), "timeout");
    });

    it("an IPv6 data host still drops IPv4 routed straight to the container", () => {
        must(ns.stranger, `ip route add 172.17.0.0/16 via 10.77.2.1`);
        assert.equal(connect(ns.stranger, addr.v4.container, CONTAINER_PORT), "timeout");
    });
});
