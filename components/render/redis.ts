// redis.conf: password required, append-only persistence.
import { redisString } from "./quote";

export function renderRedisConf(port: number, password: string): string {
    return [
        "# Managed by gitlab-cluster (Pulumi).",
        "bind 0.0.0.0",
        `port ${port}`,
        `requirepass ${redisString(password)}`,
        "appendonly yes",
        "appendfsync everysec",
        "dir /data",
        "",
    ].join("\n");
}
