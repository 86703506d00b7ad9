// Parsing a test config and reading what it refuses: the same few lines every config test needs.
import assert from "node:assert/strict";
import { ConfigError, parseClusterConfig, type SecretFlags } from "../../components/config";

/** Every key counts as stored encrypted (the secret checks pass). */
export const allSecret: SecretFlags = { isSecret: () => true };

/** Every problem the configuration is refused for; [] when it is accepted. */
export function problemsOf(raw: Record<string, unknown>, secrets: SecretFlags = allSecret): string[] {
    try {
        parseClusterConfig(raw, secrets);
        return [];
    } catch (err) {
        assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
        return err.problems;
    }
}

/** The problems of a configuration that must be refused: fails when it is accepted. */
export function refusalsOf(raw: Record<string, unknown>, secrets: SecretFlags = allSecret): string[] {
    const problems = problemsOf(raw, secrets);
    if (problems.length === 0) assert.fail("the config was accepted");
    return problems;
}

/** The single problem of a configuration that must be refused for exactly one reason. */
export function problemOf(raw: Record<string, unknown>, secrets: SecretFlags = allSecret): string {
    const problems = refusalsOf(raw, secrets);
    assert.equal(problems.length, 1, `expected one problem, got: ${problems.join(" | ")}`);
    return problems[0]!;
}
