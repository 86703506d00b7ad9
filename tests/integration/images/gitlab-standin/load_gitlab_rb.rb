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
#        load_gitlab_rb.rb --known             (prints KNOWN as a JSON list)
# Prints JSON: {"external_url": ..., "gitlab_rails": {...}, ...,
#               "_standin": {"file": PATH, "unknown_top_level": [...]}}
# Exit: 0 ok; 1 file missing / Ruby error / invalid external_url;
#       3 with --strict when unknown top-level names were used (real Omnibus
#       fails on those with NoMethodError).
require 'json'
require 'set'
require 'uri'

# Every top-level name of Omnibus 18.4's gitlab.rb, as strict mode accepts them:
# omnibus-gitlab tag 18.4.1+ce.0, files/gitlab-cookbooks/package/libraries/config/gitlab.rb.
# The same list as OMNIBUS_TOP_LEVEL in components/render/gitlabRb.ts (a test compares them).
KNOWN = %w[
  actioncable alertmanager bootstrap consul crond geo_logcursor geo_postgresql geo_secondary
  git_data_dirs gitaly gitlab_backup_cli gitlab_ci gitlab_exporter gitlab_kas gitlab_kas_nginx
  gitlab_pages gitlab_rails gitlab_shell gitlab_sshd gitlab_workhorse high_availability letsencrypt
  logging logrotate mailroom manage_accounts manage_storage_directories mattermost mattermost_nginx
  nginx node_exporter package pages_nginx patroni pgbouncer pgbouncer_exporter postgres_exporter
  postgresql praefect prometheus prometheus_monitoring puma redis redis_exporter registry
  registry_nginx remote_syslog repmgr repmgrd sentinel sidekiq spamcheck storage_check
  suggested_reviewers unicorn user web_server
  external_url git_data_dir gitlab_kas_external_url mattermost_external_url pages_external_url
  registry_external_url roles runtime_dir
  application_role consul_role geo_primary_role geo_secondary_role gitaly_role monitoring_role
  pages_role patroni_role pgbouncer_role postgres_role redis_master_role redis_replica_role
  redis_sentinel_role sidekiq_role spamcheck_role
  edition node
].to_set.freeze

if ARGV == ['--known']
  puts JSON.generate(KNOWN.to_a.sort)
  exit 0
end

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
    # drop hashes that only exist because something *read* an unset key (a `{}` written in gitlab.rb stays)
    v.each_with_object({}) do |(k, x), o|
      pruned = prune(x)
      o[k.to_s] = pruned unless x.is_a?(AutoHash) && pruned == {}
    end
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
