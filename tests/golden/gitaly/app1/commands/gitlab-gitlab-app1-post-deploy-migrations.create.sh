#!/bin/sh
set -eu
echo "every node runs GitLab 18.4.1-ce.0: post-deployment migrations on gitlab-gitlab-app1"
docker exec gitlab-gitlab-app1 env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate
echo "post-deployment migrations done"
