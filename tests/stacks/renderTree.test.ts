// What `npm run render` writes shows a version bump (issue 16, item 5): a container's image is
// the configured reference, not the image ID the mocks make up (which ignores the reference).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate } from "../../scripts/evaluate";
import { renderTree } from "../../scripts/renderStack";
import { threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("render-keys");

async function treeWith(edit: (c: ReturnType<typeof threeNodeConfig>) => void): Promise<Map<string, string>> {
    const config = threeNodeConfig();
    edit(config);
    return renderTree(await evaluate(config, { passwordFor: name => `[generated ${name}]` }));
}

describe("render shows the configured images", () => {
    it("each container's JSON names its configured image reference, no made-up digest", async () => {
        const tree = await treeWith(() => undefined);
        const containers = [...tree].filter(([f]) => /\/containers\/.*\.json$/.test(f));
        assert.ok(containers.length >= 5);
        for (const [file, text] of containers) {
            const image = (JSON.parse(text) as { image: string }).image;
            assert.doesNotMatch(image, /^sha256:/, file);
            assert.match(image, /^[a-z0-9./-]+:[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?$/, file);
        }
    });

    it("changing gitlab.image changes the rendered tree: each GitLab container and the manifest", async () => {
        const before = await treeWith(() => undefined);
        const after = await treeWith(c => { (c.gitlab as { image: string }).image = "gitlab/gitlab-ce:18.5.2-ce.0"; });
        const changed = [...after.keys()].filter(f => after.get(f) !== before.get(f)).sort();
        assert.ok(changed.includes("manifest.json"), changed.join(", "));
        for (const host of ["app1", "app2", "app3"]) {
            const file = `${host}/containers/gitlab-gitlab-${host}.json`;
            assert.ok(changed.includes(file), `${file} changes`);
            assert.equal((JSON.parse(after.get(file)!) as { image: string }).image, "gitlab/gitlab-ce:18.5.2-ce.0");
        }
    });
});
