// Host firewall for a published service: only the given source ranges may reach it. Docker's
// published ports bypass INPUT; Docker's documented place for such rules is the DOCKER-USER
// chain, where the destination is already rewritten, so rules match the original destination
// (conntrack --ctorigdst/--ctorigdstport).
import { shellQuote } from "./quote";

export interface FirewallInput {
    /** Short service name: chain GLC-<service>, script and unit names. */
    readonly service: string;
    /** The published address and port. */
    readonly address: string;
    readonly port: number;
    /** Address ranges allowed in; everything else is dropped. */
    readonly sources: readonly string[];
}

function names(service: string) {
    if (!/^[a-z][a-z0-9-]{0,15}$/.test(service)) throw new Error(`firewall service name "${service}" must be short lower-case letters, digits, '-'`);
    return {
        chain: `GLC-${service.toUpperCase()}`,
        script: `/usr/local/sbin/gitlab-cluster-firewall-${service}`,
        unit: `/etc/systemd/system/gitlab-cluster-firewall-${service}.service`,
    };
}

function family(input: FirewallInput) {
    const v6 = input.address.includes(":");
    for (const s of input.sources) {
        if (s.includes(":") !== v6) throw new Error(`firewall for ${input.service}: source ${s} is not of the same address family as ${input.address}`);
    }
    return v6 ? { iptables: "ip6tables", restore: "ip6tables-restore" } : { iptables: "iptables", restore: "iptables-restore" };
}

/** iptables-restore input for the service's chain: allowed sources return, the rest is dropped. */
export function renderFirewallRules(input: FirewallInput): string {
    const { chain } = names(input.service);
    if (input.sources.length === 0) throw new Error(`firewall for ${input.service} needs at least one allowed source`);
    return [
        "*filter",
        `:${chain} - [0:0]`,
        // With --noflush, declaring a chain does not empty it (iptables-nft): flush it in the same commit.
        `-F ${chain}`,
        ...[...new Set(input.sources)].sort().map(s => `-A ${chain} -s ${s} -j RETURN`),
        `-A ${chain} -j DROP`,
        "COMMIT",
        "",
    ].join("\n");
}

/**
 * The script installed on the host (run now and, with systemd, at every boot after Docker):
 * replaces the chain atomically and makes sure DOCKER-USER jumps to it for this port.
 */
export function renderFirewallScript(input: FirewallInput): string {
    const { chain } = names(input.service);
    const f = family(input);
    const match = `-p tcp -m conntrack --ctorigdst ${input.address} --ctorigdstport ${input.port} -j ${chain}`;
    return `#!/bin/sh
# Managed by gitlab-cluster (Pulumi): only the GitLab hosts may reach ${input.service} on ${input.address}:${input.port}.
set -eu
${f.iptables} -N DOCKER-USER 2>/dev/null || true
printf '%s' ${shellQuote(renderFirewallRules(input))} | ${f.restore} --noflush
${f.iptables} -C DOCKER-USER ${match} 2>/dev/null || ${f.iptables} -I DOCKER-USER ${match}
echo "firewall ${chain}: ${input.sources.length} allowed source(s) for ${input.address}:${input.port}"
`;
}

/** Writes the script and its boot unit, and runs it. */
export function installFirewallScript(input: FirewallInput): string {
    const n = names(input.service);
    const f = family(input);
    return `#!/bin/sh
set -eu
command -v ${f.restore} >/dev/null 2>&1 || { echo "${f.restore} is not installed on this host: install iptables" >&2; exit 1; }
mkdir -p /usr/local/sbin
printf '%s' ${shellQuote(renderFirewallScript(input))} > ${n.script}.new
chmod 0700 ${n.script}.new
mv -f ${n.script}.new ${n.script}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    printf '%s' ${shellQuote(`[Unit]\nDescription=gitlab-cluster: only the GitLab hosts may reach ${input.service}\nAfter=docker.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=${n.script}\n\n[Install]\nWantedBy=multi-user.target\n`)} > ${n.unit}
    systemctl daemon-reload
    systemctl enable ${n.unit.replace(/^.*\//, "")} >/dev/null
fi
${n.script}
`;
}

/** Removes the jump, the chain, the script and the unit. */
export function removeFirewallScript(input: FirewallInput): string {
    const n = names(input.service);
    const f = family(input);
    const match = `-p tcp -m conntrack --ctorigdst ${input.address} --ctorigdstport ${input.port} -j ${n.chain}`;
    return `#!/bin/sh
set -eu
while ${f.iptables} -D DOCKER-USER ${match} 2>/dev/null; do :; done
${f.iptables} -F ${n.chain} 2>/dev/null || true
${f.iptables} -X ${n.chain} 2>/dev/null || true
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable ${n.unit.replace(/^.*\//, "")} >/dev/null 2>&1 || true
fi
rm -f ${n.script} ${n.unit}
echo "firewall ${n.chain} removed"
`;
}
