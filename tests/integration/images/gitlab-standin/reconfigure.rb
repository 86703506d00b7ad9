#!/usr/bin/ruby
# frozen_string_literal: true
#
# STAND-IN for `gitlab-ctl reconfigure` (gitlab-cluster-test). What it does,
# mirroring the parts of a real reconfigure that the cluster tests can observe:
#  1. loads /etc/gitlab/gitlab.rb with load_gitlab_rb.rb --strict; on failure
#     it exits non-zero and leaves /var/opt/gitlab/standin-reconfigure.failed
#     (the stand-in HTTP server then answers /-/readiness with 503);
#  2. writes the result to /var/opt/gitlab/standin-settings.json;
#  3. creates /etc/gitlab/gitlab-secrets.json with random secrets if it does not
#     exist (as a real first reconfigure does: this is why the file must be
#     copied to nodes 2..N *before* their first reconfigure);
#  4. creates group/user `git` with user['gid'] / user['uid'] when set (as
#     Omnibus does) and the data directories below /var/opt/gitlab: git-data
#     only where this node runs Gitaly (gitaly['enable'] is not false), at the
#     storage paths of gitaly['configuration'] when it names them;
#  5. Gitaly tier (STAND-IN, NOT Gitaly): on a Gitaly node (gitaly['configuration']
#     [:listen_addr] and puma['enable'] = false) checks listen_addr and the storage
#     list, and sends SIGHUP to a running gitaly_standin.rb so that it re-reads the
#     settings (a new token is used at once, a new listen_addr reopens the listener).
# It configures no real service: no Rails, no database migration, no nginx.
# GITLAB_STANDIN_NO_ACCOUNTS=1 (the stand-in's self-test only) leaves users,
# groups and ownership alone.
require 'json'
require 'securerandom'
require 'fileutils'
require 'open3'
require 'socket'

require_relative 'standin_lib'

ETC = ENV.fetch('GITLAB_STANDIN_ETC', '/etc/gitlab')
VAR = ENV.fetch('GITLAB_STANDIN_VAR', '/var/opt/gitlab')
FAILED = File.join(VAR, 'standin-reconfigure.failed')
LOADER = File.join(__dir__, 'load_gitlab_rb.rb')

FileUtils.mkdir_p(VAR)
out, err, st = Open3.capture3('ruby', LOADER, '--strict', File.join(ETC, 'gitlab.rb'))
unless st.success?
  File.write(FAILED, err)
  warn err
  warn "\nThere was an error running gitlab-ctl reconfigure (stand-in): gitlab.rb did not load (exit #{st.exitstatus})."
  exit 1
end
warn err unless err.empty?
settings = JSON.parse(out)

# The Gitaly tier (stand-in): a Gitaly node's listen_addr and storages must be usable.
gitaly_node = Standin::Gitaly.node?(settings)
begin
  if gitaly_node
    Standin::Gitaly.parse_listen(Standin::Gitaly.listen_addr(settings))
    raise Standin::Gitaly::Error, "gitaly['configuration'][:storage] names no storage" if Standin::Gitaly.storages(settings).empty?
  end
  gitaly_storages = Standin::Gitaly.enabled?(settings) ? Standin::Gitaly.storages(settings) : []
rescue Standin::Gitaly::Error => e
  File.write(FAILED, e.message)
  warn "There was an error running gitlab-ctl reconfigure (stand-in): #{e.message}"
  exit 1
end

tmp = File.join(VAR, 'standin-settings.json.tmp')
File.write(tmp, out)
File.rename(tmp, File.join(VAR, 'standin-settings.json'))

secrets = File.join(ETC, 'gitlab-secrets.json')
unless File.exist?(secrets)
  hex = -> { SecureRandom.hex(64) }
  data = {
    'gitlab_workhorse' => { 'secret_token' => SecureRandom.base64(32) },
    'gitlab_shell' => { 'secret_token' => hex.call },
    'gitlab_rails' => %w[secret_key_base db_key_base otp_key_base encrypted_settings_key_base]
      .to_h { |k| [k, hex.call] },
    'gitlab_standin' => { 'generated_by' => 'reconfigure stand-in', 'node' => ENV['NODE_NAME'] || Socket.gethostname }
  }
  File.open(secrets, File::WRONLY | File::CREAT | File::EXCL, 0o600) { |f| f.write(JSON.pretty_generate(data)) }
  puts "stand-in: generated #{secrets} (it did not exist)"
end
# As a real reconfigure does after an upgrade that brings a new secret: generate the one missing
# from this node's file, unless gitlab.rb says package['generate_default_secrets'] = false. The
# stand-in's 18.5.0 brings one (gitlab_rails.standin_secret_18_5).
version = File.read(Standin::VERSION_FILE).strip rescue '0'
if Gem::Version.new(version) >= Gem::Version.new('18.5.0') && settings.dig('package', 'generate_default_secrets') != false
  data = JSON.parse(File.read(secrets))
  unless data.dig('gitlab_rails', 'standin_secret_18_5')
    (data['gitlab_rails'] ||= {})['standin_secret_18_5'] = SecureRandom.hex(64)
    File.write("#{secrets}.tmp", JSON.pretty_generate(data), perm: 0o600)
    File.rename("#{secrets}.tmp", secrets)
    puts "stand-in: added the secret 18.5.0 brings (gitlab_rails.standin_secret_18_5) to #{secrets}"
  end
end

user = settings['user'].is_a?(Hash) ? settings['user'] : {}
uname = user['username'] || 'git'
gname = user['group'] || 'git'
def run(*cmd) = system(*cmd, out: File::NULL, err: File::NULL)
manage_accounts = ENV['GITLAB_STANDIN_NO_ACCOUNTS'] != '1'
if !manage_accounts
  puts 'stand-in: GITLAB_STANDIN_NO_ACCOUNTS=1: users, groups and ownership left alone'
elsif user['gid'] && !run('getent', 'group', gname)
  run('groupadd', '-g', user['gid'].to_s, gname)
elsif !run('getent', 'group', gname)
  run('groupadd', '-r', gname)
elsif user['gid']
  run('groupmod', '-g', user['gid'].to_s, gname)
end
if !manage_accounts
  nil
elsif run('id', uname)
  run('usermod', '-u', user['uid'].to_s, uname) if user['uid']
else
  args = ['useradd', '-g', gname, '-d', VAR, '-s', '/bin/sh', '-M']
  args += user['uid'] ? ['-u', user['uid'].to_s] : ['-r']
  run(*args, uname) or warn "stand-in: could not create user #{uname}"
end
# git-data: only where this node runs a Gitaly (a Rails node with gitaly['enable'] = false keeps
# its repositories on the Gitaly node); at gitaly['configuration']'s storage paths when it names them.
git_data =
  if !Standin::Gitaly.enabled?(settings)
    where = Standin::Gitaly.rails_storages(settings).map { |n, a| "#{n} at #{a}" }.join(', ')
    puts "stand-in: gitaly['enable'] = false: no local git-data#{where.empty? ? '' : " (repositories: #{where})"}"
    []
  elsif gitaly_storages.empty? then [File.join(VAR, 'git-data/repositories')]
  else gitaly_storages.map { |st| st['path'] }
  end
dirs = git_data + %w[gitlab-rails/uploads gitlab-rails/shared gitlab-ci/builds backups .ssh].map { |d| File.join(VAR, d) }
dirs.each do |path|
  FileUtils.mkdir_p(path)
  FileUtils.chown(uname, gname, path) if manage_accounts
rescue StandardError => e
  warn "stand-in: warning: #{path}: #{e.message}" # e.g. root_squash on NFS
end

if gitaly_node
  puts "stand-in: this is a Gitaly STAND-IN node (NOT Gitaly; plain HTTP, not gRPC): listen_addr #{Standin::Gitaly.listen_addr(settings)}, " \
       "storages #{gitaly_storages.map { |st| "#{st['name']}=#{st['path']}" }.join(', ')}, " \
       "auth #{Standin::Gitaly.token(settings).empty? ? 'NONE (no auth token: every request accepted, as Gitaly does)' : 'token'}"
end
# A running Gitaly stand-in re-reads the settings (as Omnibus restarts/HUPs gitaly on a change).
gitaly_pid = (Integer(File.read(File.join(Standin::RUN, 'gitaly.pid')).strip) rescue nil)
if gitaly_pid
  begin
    Process.kill('HUP', gitaly_pid)
    puts "stand-in: sent SIGHUP to the Gitaly stand-in (pid #{gitaly_pid}): settings re-read"
  rescue Errno::ESRCH, Errno::EPERM
    nil
  end
end

# The migration node (auto_migrate) "migrates" the external database: the
# stand-in keeps one table, and stores there, once, a digest of the secrets it
# was first configured with (what `gitlab-rake gitlab:doctor:secrets` checks).
rails = settings['gitlab_rails'].is_a?(Hash) ? settings['gitlab_rails'] : {}
if rails['auto_migrate'] == true && !rails['db_host'].to_s.empty?
  require_relative 'standin_lib'
  sql = <<~SQL
    CREATE TABLE IF NOT EXISTS standin_schema_meta (key text PRIMARY KEY, value text NOT NULL);
    INSERT INTO standin_schema_meta VALUES ('secrets_digest', '#{Standin.secrets_digest}') ON CONFLICT (key) DO NOTHING;
  SQL
  _, err, st = Standin.psql(sql)
  unless st.success?
    File.write(FAILED, err)
    warn "There was an error running gitlab-ctl reconfigure (stand-in): database migration failed: #{err.strip}"
    exit 1
  end
  puts "stand-in: database #{rails['db_database']} on #{rails['db_host']} migrated (stand-in schema)"
  # Omnibus's reconfigure runs `gitlab-rake db:migrate`: post-deployment ones too unless the environment skips them.
  Standin.log_migrations('reconfigure', Standin.skip_post_deployment? ? 'regular' : 'regular+post-deployment')
end

FileUtils.rm_f(FAILED)
puts 'gitlab Reconfigured! (stand-in: settings in ' + File.join(VAR, 'standin-settings.json') + ')'
