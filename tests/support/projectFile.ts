// Pulumi's project-file rules for a `config:` block, as the mock tests apply them. The real CLI
// is held to the same answers by tests/engine/cli.etest.ts.

// The CLI's project schema and Project.Validate (sdk/go/common/workspace/project.json and
// project.go at v3.274.1) admit these types; `object` checks only that a value is a map.
const SIMPLE_TYPES = ["string", "integer", "boolean", "array", "object"];

/** The problems Pulumi's project validation would report for a `config:` block. */
export function projectConfigProblems(project: { name?: string; config?: Record<string, unknown> }): string[] {
    const problems: string[] = [];
    for (const [key, decl] of Object.entries(project.config ?? {})) {
        const ownKey = !key.includes(":") || key.startsWith(`${project.name}:`);
        if (decl === null || typeof decl !== "object" || Array.isArray(decl)) continue;
        const d = decl as { type?: unknown; items?: unknown };
        if (d.type !== undefined && !SIMPLE_TYPES.includes(String(d.type))) problems.push(`${key}: type "${String(d.type)}" is not one of ${SIMPLE_TYPES.join(", ")}`);
        if (d.type === "array" && d.items === undefined) problems.push(`${key}: an array needs 'items'`);
        if (!ownKey && d.type !== undefined) problems.push(`${key}: not namespaced by the project, so it may not define a type`);
    }
    return problems;
}
