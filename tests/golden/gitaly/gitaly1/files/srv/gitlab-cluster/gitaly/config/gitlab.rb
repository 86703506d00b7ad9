# Managed by gitlab-cluster (Pulumi): edits here are overwritten on the next `pulumi up`.
# Node: gitaly1 (Gitaly)

# Only Gitaly runs here.
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
gitlab_exporter['enable'] = false
gitlab_kas['enable'] = false
prometheus_monitoring['enable'] = false
gitlab_rails['rake_cache_clear'] = false
gitlab_rails['auto_migrate'] = false

# Git hooks call GitLab's internal API through the balancer, with gitlab-shell's secret.
gitlab_rails['internal_api_url'] = 'https://gitlab.example.com'
gitlab_shell['secret_token'] = '[generated gitlab-gitaly-shell-secret]'

# The GitLab nodes connect over TCP with the token; the host firewall admits only them.
gitaly['configuration'] = {
  listen_addr: '0.0.0.0:8075',
  auth: { token: '[generated gitlab-gitaly-token]' },
  storage: [{ name: 'default', path: '/var/opt/gitlab/git-data/repositories' }],
}
