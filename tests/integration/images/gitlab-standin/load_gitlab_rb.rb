#!/usr/bin/ruby
# frozen_string_literal: true
#
# STAND-IN for how GitLab Omnibus reads /etc/gitlab/gitlab.rb (gitlab-cluster-test).
# Omnibus evaluates gitlab.rb as Ruby against Mixlib::Config attribute
# hashes (gitlab_rails['x'] = ..., external_url '...'). Here every top-level
# name is an auto-vivifying hash (or, when called with arguments, a setting),
# so a rendered gitlab.rb can be checked for: Ruby syntax and quoting, the
# values it really produces, and top-level names Omnibus would not know.
#
# Usage: load_gitlab_rb.rb [--strict] [PATH]   (PATH default /etc/gitlab/gitlab.rb)
# Prints JSON: {"external_url": ..., "gitlab_rails": {...}, ...,
#               "_standin": {"file": PATH, "unknown_top_level": [...]}}
# Exit: 0 ok; 1 file missing / Ruby error / invalid external_url;
#       3 with --strict when unknown top-level names were used (real Omnibus
#       fails on those with NoMethodError).
require 'json'
require 'set'
require 'uri'

# Top-level names of omnibus-gitlab's gitlab.rb (files/gitlab-config-template/
# gitlab.rb.template and the attribute roots of its cookbooks). Not exhaustive.
KNOWN = %w[
  external_url registry_external_url pages_external_url mattermost_external_url
  gitlab_kas_external_url roles git_data_dirs high_availability manage_accounts
  manage_storage_directories user web_server package logging logrotate crond
  gitlab_rails gitlab_workhorse gitlab_shell gitlab_sshd gitaly praefect puma
  sidekiq unicorn actioncable mailroom nginx registry_nginx pages_nginx
  mattermost_nginx gitlab_kas_nginx postgresql pgbouncer patroni consul redis
  sentinel redis_exporter postgres_exporter pgbouncer_exporter gitlab_exporter
  node_exporter prometheus alertmanager grafana prometheus_monitoring letsencrypt
  registry gitlab_pages gitlab_kas mattermost geo_postgresql geo_secondary
  geo_primary_role geo_secondary_role geo_logcursor storage_check spamcheck
  gitlab_ci gitlab_monitor monitoring_role consul_role redis_master_role
  redis_replica_role redis_sentinel_role postgres_role pgbouncer_role
  patroni_role application_role sidekiq_role gitaly_role praefect_role
  spamcheck_role openssl gitlab_kas_role monitoring pages_nginx_role
  suggested_reviewers gitlab_backup_cli
].to_set.freeze

class AutoHash < Hash
  def initialize
    super { |h, k| h[k] = AutoHash.new }
  end
end

class GitlabRbContext
  attr_reader :settings, :unknown

  def initialize
    @settings = {}
    @unknown = []
  end

  # `gitlab_rails['x'] = 1` -> gitlab_rails returns the hash;
  # `external_url 'https://x'` / `roles ['a']` / `git_data_dirs({...})` -> setting.
  def method_missing(name, *args, &block)
    key = name.to_s
    return super if key.end_with?('=', '?', '!') || block

    @unknown << key unless KNOWN.include?(key) || @unknown.include?(key)
    if args.empty?
      @settings[key] ||= AutoHash.new
    else
      @settings[key] = args.length == 1 ? args.first : args
    end
  end

  def respond_to_missing?(*) = true
end

def prune(v)
  case v
  when Hash
    h = v.each_with_object({}) { |(k, x), o| o[k.to_s] = prune(x) }
    # drop hashes that only exist because something *read* an unset key
    h.reject { |_, x| x.is_a?(Hash) && x.empty? && v.is_a?(AutoHash) }
  when Array then v.map { |x| prune(x) }
  when Symbol then v.to_s
  else v
  end
end

strict = ARGV.delete('--strict')
path = ARGV[0] || '/etc/gitlab/gitlab.rb'
unless File.file?(path)
  warn "load_gitlab_rb (stand-in): #{path} not found"
  exit 1
end

ctx = GitlabRbContext.new
begin
  ctx.instance_eval(File.read(path), path, 1)
rescue ScriptError, StandardError => e
  warn "load_gitlab_rb (stand-in): #{path} failed to load: #{e.class}: #{e.message}"
  warn e.backtrace.grep(/\A#{Regexp.escape(path)}/).first(3).join("\n")
  exit 1
end

out = prune(ctx.settings).reject { |k, v| v == {} && ctx.settings[k].is_a?(AutoHash) }
if (url = out['external_url'])
  u = (URI.parse(url.to_s) rescue nil)
  unless u && %w[http https].include?(u.scheme) && u.host && !u.host.empty?
    warn "load_gitlab_rb (stand-in): GitLab external URL must include a schema and FQDN, e.g. http://gitlab.example.com/ (got #{url.inspect})"
    exit 1
  end
end
out['_standin'] = { 'file' => path, 'unknown_top_level' => ctx.unknown }
puts JSON.pretty_generate(out)
if strict && !ctx.unknown.empty?
  warn "load_gitlab_rb (stand-in): unknown top-level names in #{path}: #{ctx.unknown.join(', ')}"
  exit 3
end
