// Loopback helpers for tests that start a real server.
import * as net from "node:net";

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

/** Does something accept a connection on 127.0.0.1:port now? */
export function portOpen(port: number): Promise<boolean> {
    return new Promise<boolean>(resolve => {
        const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
        s.once("error", () => resolve(false));
    });
}

/**
 * Waits, at most timeoutMs, until something accepts connections on 127.0.0.1:port. `stopped`
 * returns why to give up at once (the server exited), or undefined to keep waiting.
 */
export async function waitForPort(port: number, timeoutMs: number, stopped: () => string | undefined = () => undefined): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const why = stopped();
        if (why !== undefined) throw new Error(why);
        if (await portOpen(port)) return;
        if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
        await new Promise(r => setTimeout(r, 50));
    }
}
