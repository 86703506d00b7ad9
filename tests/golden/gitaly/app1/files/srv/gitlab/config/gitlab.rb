# Managed by gitlab-cluster (Pulumi): edits here are overwritten on the next `pulumi up`.
# Node: app1 (migration node)
external_url 'https://gitlab.example.com'

# Exactly one node migrates the database; the others start after it is ready.
gitlab_rails['auto_migrate'] = true

# KAS keeps its private API on localhost: agent tunnels would break across nodes.
gitlab_kas['enable'] = false

# External PostgreSQL
postgresql['enable'] = false
gitlab_rails['db_host'] = '10.0.0.21'
gitlab_rails['db_port'] = 5432
gitlab_rails['db_database'] = 'gitlabhq_production'
gitlab_rails['db_username'] = 'gitlab'
gitlab_rails['db_password'] = '[generated gitlab-postgres-password]'

# External Redis
redis['enable'] = false
gitlab_rails['redis_host'] = '10.0.0.21'
gitlab_rails['redis_port'] = 6379
gitlab_rails['redis_password'] = '[generated gitlab-redis-password]'

# Behind the load balancer
letsencrypt['enable'] = false
nginx['listen_port'] = 80
nginx['listen_https'] = false
nginx['proxy_set_headers'] = { 'X-Forwarded-Proto' => 'https', 'X-Forwarded-Ssl' => 'on' }
nginx['real_ip_trusted_addresses'] = ['10.0.0.5/32']
nginx['real_ip_header'] = 'X-Forwarded-For'
nginx['real_ip_recursive'] = 'on'
gitlab_rails['trusted_proxies'] = ['10.0.0.5/32']
gitlab_rails['monitoring_whitelist'] = ['127.0.0.0/8', '::1/128', '10.0.0.5/32']
gitlab_rails['gitlab_shell_ssh_port'] = 2222

# Used once, when the migration node first seeds the database.
gitlab_rails['initial_root_password'] = '[generated gitlab-initial-root-password]'

# Repositories are on the Gitaly node (GitLab's supported storage): no Gitaly runs here.
gitaly['enable'] = false
gitlab_rails['repositories_storages'] = { 'default' => { 'gitaly_address' => 'tcp://10.0.0.31:8075' } }
gitlab_rails['gitaly_token'] = '[generated gitlab-gitaly-token]'
gitlab_shell['secret_token'] = '[generated gitlab-gitaly-shell-secret]'
