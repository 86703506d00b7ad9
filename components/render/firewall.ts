// Host firewall for a published service: only the given source ranges may reach it.
//
// Docker's published ports bypass INPUT; Docker's documented place for such rules is the
// DOCKER-USER chain (first in FORWARD), where the destination is already rewritten. Three paths
// lead to the container, and each gets a jump to the service's chain:
//   1. DNAT of the published address:port (matched by conntrack's original destination);
//   2. a packet routed straight to the container's address on Docker's bridge (its destination
//      is the container's port on the bridge, and it was not DNAT'd);
//   3. Docker's userland proxy (IPv6 on the IPv4-only default bridge, or Docker without
//      iptables NAT), which accepts on the host itself: INPUT.
// Every jump matches the ORIGINAL direction only: conntrack's original-destination fields are
// the same on reply packets, whose source is the container, and the chain would drop them.
import { shellQuote } from "./quote";

export interface FirewallInput {
    /** Short service name: chain GLC-<service>, script and unit names. */
    readonly service: string;
    /** The published address and port. */
    readonly address: string;
    readonly port: number;
    /** The port the service listens on inside its container. */
    readonly containerPort: number;
    /** Docker's bridge range on this host (IPv4): the container's own address is in it. */
    readonly bridgeSubnet: string;
    /** Address ranges allowed in; everything else is dropped. */
    readonly sources: readonly string[];
}

type Tool = "iptables" | "ip6tables";

/** One address family's part: the chain's allowed sources and the jumps into it. */
interface FamilyRules {
    readonly tool: Tool;
    readonly restore: string;
    readonly sources: readonly string[];
    readonly jumps: readonly { chain: "DOCKER-USER" | "INPUT"; match: string }[];
}

function names(service: string) {
    if (!/^[a-z][a-z0-9-]{0,15}$/.test(service)) throw new Error(`firewall service name "${service}" must be short lower-case letters, digits, '-'`);
    return {
        chain: `GLC-${service.toUpperCase()}`,
        script: `/usr/local/sbin/gitlab-cluster-firewall-${service}`,
        unit: `/etc/systemd/system/gitlab-cluster-firewall-${service}.service`,
    };
}

const isV6 = (a: string) => a.includes(":");

function families(input: FirewallInput): FamilyRules[] {
    const { chain } = names(input.service);
    if (input.sources.length === 0) throw new Error(`firewall for ${input.service} needs at least one allowed source`);
    if (isV6(input.bridgeSubnet)) throw new Error(`firewall for ${input.service}: Docker's bridge range ${input.bridgeSubnet} must be IPv4 (the default bridge)`);
    const v6 = isV6(input.address);
    for (const s of input.sources) {
        if (isV6(s) !== v6 && s !== input.bridgeSubnet) throw new Error(`firewall for ${input.service}: source ${s} is not of the same address family as ${input.address}`);
    }
    const original = "-m conntrack --ctdir ORIGINAL";
    const published = { chain: "DOCKER-USER" as const, match: `-p tcp ${original} --ctorigdst ${input.address} --ctorigdstport ${input.port} -j ${chain}` };
    const proxied = { chain: "INPUT" as const, match: `-d ${input.address} -p tcp --dport ${input.port} ${original} -j ${chain}` };
    // Not DNAT'd: a published port of another container with the same inside port (a balancer's
    // nginx beside a GitLab node, both on 80) is that container's business, not this chain's.
    const routed = { chain: "DOCKER-USER" as const, match: `-d ${input.bridgeSubnet} -p tcp --dport ${input.containerPort} ${original} ! --ctstate DNAT -j ${chain}` };
    const v4Sources = input.sources.filter(s => !isV6(s));
    if (!v6) return [{ tool: "iptables", restore: "iptables-restore", sources: v4Sources, jumps: [published, routed, proxied] }];
    return [
        { tool: "ip6tables", restore: "ip6tables-restore", sources: input.sources.filter(isV6), jumps: [published, proxied] },
        // The container's IPv4 address on the bridge can still be routed to: drop all but the bridge itself.
        { tool: "iptables", restore: "iptables-restore", sources: v4Sources, jumps: [routed] },
    ];
}

/** iptables-restore input for the service's chain: allowed sources return, the rest is dropped. */
function chainRules(chain: string, sources: readonly string[]): string {
    return [
        "*filter",
        `:${chain} - [0:0]`,
        // With --noflush, declaring a chain does not empty it (iptables-nft): flush it in the same commit.
        `-F ${chain}`,
        ...[...new Set(sources)].sort().map(s => `-A ${chain} -s ${s} -j RETURN`),
        `-A ${chain} -j DROP`,
        "COMMIT",
        "",
    ].join("\n");
}

/** iptables-restore input for the service's chain in the published address's family. */
export function renderFirewallRules(input: FirewallInput): string {
    return chainRules(names(input.service).chain, families(input)[0]!.sources);
}

/** The jump that, before the reply-direction fix, dropped every reply: removed if still there. */
function legacyJump(input: FirewallInput): string {
    return `-p tcp -m conntrack --ctorigdst ${input.address} --ctorigdstport ${input.port} -j ${names(input.service).chain}`;
}

/**
 * The script installed on the host: replaces the chains atomically and makes sure DOCKER-USER
 * and INPUT jump to them. Run at install time it refuses a host whose FORWARD chain does not
 * go through DOCKER-USER (Docker not managing iptables: published ports would bypass it). Run
 * with --boot by the unit ordered before docker.service, it adds that jump itself, so that the
 * rules stand before Docker publishes any port.
 */
export function renderFirewallScript(input: FirewallInput): string {
    const { chain } = names(input.service);
    const parts = families(input);
    const lines = parts.map(f => {
        const forwardCheck = f.tool === "iptables"
            ? `if ! iptables -C FORWARD -j DOCKER-USER 2>/dev/null; then
    if [ "$boot" = yes ]; then
        iptables -I FORWARD -j DOCKER-USER
    else
        echo "firewall ${chain}: FORWARD does not jump to DOCKER-USER: Docker is not managing iptables on this host (is \\"iptables\\": false in /etc/docker/daemon.json?), so published ports would bypass this firewall. Let Docker manage iptables, restart it, and run again." >&2
        exit 1
    fi
fi`
            : `ip6tables -C FORWARD -j DOCKER-USER 2>/dev/null || ip6tables -I FORWARD -j DOCKER-USER`;
        return `${f.tool} -N DOCKER-USER 2>/dev/null || true
${forwardCheck}
printf '%s' ${shellQuote(chainRules(chain, f.sources))} | ${f.restore} --noflush
${f.jumps.map(j => `${f.tool} -C ${j.chain} ${j.match} 2>/dev/null || ${f.tool} -I ${j.chain} ${j.match}`).join("\n")}`;
    });
    const published = parts[0]!;
    return `#!/bin/sh
# Managed by gitlab-cluster (Pulumi): only the GitLab hosts may reach ${input.service} on ${input.address}:${input.port}.
set -eu
boot=no
if [ "\${1:-}" = --boot ]; then boot=yes; fi
${lines.join("\n")}
while ${published.tool} -D DOCKER-USER ${legacyJump(input)} 2>/dev/null; do :; done
echo "firewall ${chain}: ${published.sources.length} allowed source(s) for ${input.address}:${input.port}"
`;
}

/**
 * Writes the script and its boot unit, and runs it. The unit runs before Docker starts (and
 * Docker requires it): no published port is ever up without its rules.
 */
export function installFirewallScript(input: FirewallInput): string {
    const n = names(input.service);
    const unitName = n.unit.replace(/^.*\//, "");
    const restores = [...new Set(families(input).map(f => f.restore))];
    const unit = `[Unit]
Description=gitlab-cluster: only the GitLab hosts may reach ${input.service}
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target docker.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${n.script} --boot

[Install]
WantedBy=multi-user.target
RequiredBy=docker.service
`;
    return `#!/bin/sh
set -eu
${restores.map(r => `command -v ${r} >/dev/null 2>&1 || { echo "${r} is not installed on this host: install iptables" >&2; exit 1; }`).join("\n")}
mkdir -p /usr/local/sbin
# shellcheck disable=SC2016 # the script is written out as it is, to expand on the host when it runs
printf '%s' ${shellQuote(renderFirewallScript(input))} > ${n.script}.new
chmod 0700 ${n.script}.new
mv -f ${n.script}.new ${n.script}
${n.script}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    printf '%s' ${shellQuote(unit)} > ${n.unit}
    systemctl daemon-reload
    systemctl reenable ${unitName} >/dev/null
fi
`;
}

/** Removes the jumps, the chains, the script and the unit. */
export function removeFirewallScript(input: FirewallInput): string {
    const n = names(input.service);
    const unitName = n.unit.replace(/^.*\//, "");
    const parts = families(input);
    return `#!/bin/sh
set -eu
${parts.map(f => f.jumps.map(j => `while ${f.tool} -D ${j.chain} ${j.match} 2>/dev/null; do :; done`).join("\n")).join("\n")}
while ${parts[0]!.tool} -D DOCKER-USER ${legacyJump(input)} 2>/dev/null; do :; done
${[...new Set(parts.map(f => f.tool))].map(t => `${t} -F ${n.chain} 2>/dev/null || true\n${t} -X ${n.chain} 2>/dev/null || true`).join("\n")}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable ${unitName} >/dev/null 2>&1 || true
fi
rm -f ${n.script} ${n.unit}
echo "firewall ${n.chain} removed"
`;
}
