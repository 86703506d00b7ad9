// Stack configurations shared by the tests: raw `gitlab-cluster:*` values as a stack file holds them.
// They are the examples `npm run bench` evaluates too, so they live outside the tests.

export { gitalyConfig, nNodeConfig, TEST_PRIVATE_KEY, TEST_TLS_CERT, TEST_TLS_KEY, testHostKey, threeNodeConfig } from "../scripts/lib/exampleConfigs";
