#!/bin/sh
set -eu
echo "the program writes ${GITLAB_CLUSTER_SSH_KEY_FILE} at every run for the Docker provider's ssh; deleting this resource removes it"
