// A unified diff of two texts (what `diff -u` prints), for showing a promotion before it is
// written. Stack files are small, so a plain longest-common-subsequence table is enough.

type Op = { readonly kind: " " | "-" | "+"; readonly line: string; readonly oldNo: number; readonly newNo: number };

function splitLines(text: string): string[] {
    if (text === "") return [];
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return lines;
}

function editScript(a: readonly string[], b: readonly string[]): Op[] {
    const n = a.length, m = b.length;
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
        for (let j = m - 1; j >= 0; j--) {
            lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
        }
    }
    const ops: Op[] = [];
    let i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[i] === b[j]) {
            ops.push({ kind: " ", line: a[i]!, oldNo: i++, newNo: j++ });
        } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
            ops.push({ kind: "-", line: a[i]!, oldNo: i++, newNo: j });
        } else {
            ops.push({ kind: "+", line: b[j]!, oldNo: i, newNo: j++ });
        }
    }
    return ops;
}

/** `diff -u` output for oldText -> newText; empty when they are equal. */
export function unifiedDiff(oldText: string, newText: string, oldName: string, newName: string, context = 3): string {
    if (oldText === newText) return "";
    const ops = editScript(splitLines(oldText), splitLines(newText));
    const changed = ops.map((op, k) => (op.kind !== " " ? k : -1)).filter(k => k >= 0);
    const hunks: [number, number][] = [];
    for (const k of changed) {
        const start = Math.max(0, k - context), end = Math.min(ops.length, k + context + 1);
        const last = hunks[hunks.length - 1];
        if (last && start <= last[1]) last[1] = Math.max(last[1], end);
        else hunks.push([start, end]);
    }
    const out = [`--- ${oldName}`, `+++ ${newName}`];
    for (const [start, end] of hunks) {
        const slice = ops.slice(start, end);
        const oldCount = slice.filter(op => op.kind !== "+").length;
        const newCount = slice.filter(op => op.kind !== "-").length;
        const oldStart = oldCount === 0 ? slice[0]!.oldNo : slice[0]!.oldNo + 1;
        const newStart = newCount === 0 ? slice[0]!.newNo : slice[0]!.newNo + 1;
        out.push(`@@ -${oldStart},${oldCount} +${newStart},${newCount} @@`);
        for (const op of slice) out.push(`${op.kind}${op.line}`);
    }
    // Like diff, note a missing final newline (only where it differs between the two).
    if (oldText.endsWith("\n") !== newText.endsWith("\n")) out.push("\\ No newline at end of file");
    return `${out.join("\n")}\n`;
}
