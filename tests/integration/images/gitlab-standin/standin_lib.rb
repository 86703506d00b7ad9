# frozen_string_literal: true
#
# Shared helpers of the GitLab STAND-IN's commands (gitlab-cluster-test): read
# /etc/gitlab/gitlab.rb the way the stand-in's reconfigure does, and connect to
# the EXTERNAL PostgreSQL and Redis it names with its values (psql, redis-cli,
# pg_dump, passwords passed in the environment, never on a command line).
require 'json'
require 'open3'
require 'digest'

module Standin
  ETC = ENV.fetch('GITLAB_STANDIN_ETC', '/etc/gitlab')
  VAR = ENV.fetch('GITLAB_STANDIN_VAR', '/var/opt/gitlab')
  LOADER = File.join(__dir__, 'load_gitlab_rb.rb')
  VERSION_FILE = '/opt/gitlab/embedded/service/gitlab-rails/VERSION'
  TAG = '(gitlab-cluster-test STAND-IN, not GitLab)'

  module_function

  def say(msg) = puts("#{msg} #{TAG}")

  # Per node, under /var/log/gitlab (the host's <dataRoot>/logs): which migrations this node ran,
  # at which release, and whether SKIP_POST_DEPLOYMENT_MIGRATIONS was set. The upgrade test reads it.
  MIGRATIONS_LOG = '/var/log/gitlab/standin-migrations.log'
  # Pending batched background migrations `gitlab-rake gitlab:background_migrations:status` reports.
  PENDING_BACKGROUND_MIGRATIONS = File.join(VAR, 'standin-pending-background-migrations')

  def skip_post_deployment? = %w[true 1 yes].include?(ENV.fetch('SKIP_POST_DEPLOYMENT_MIGRATIONS', '').downcase)

  def log_migrations(via, kinds)
    skip = ENV.key?('SKIP_POST_DEPLOYMENT_MIGRATIONS') ? ENV['SKIP_POST_DEPLOYMENT_MIGRATIONS'] : 'unset'
    line = "#{Time.now.utc.strftime('%Y-%m-%dT%H:%M:%S.%3NZ')} #{version} #{via} #{kinds} SKIP_POST_DEPLOYMENT_MIGRATIONS=#{skip}"
    File.open(MIGRATIONS_LOG, 'a') { |f| f.puts(line) }
  end

  def settings
    @settings ||= begin
      out, err, st = Open3.capture3('ruby', LOADER, File.join(ETC, 'gitlab.rb'))
      abort("stand-in: #{ETC}/gitlab.rb does not load: #{err}") unless st.success?
      JSON.parse(out)
    end
  end

  def rails = settings['gitlab_rails'].is_a?(Hash) ? settings['gitlab_rails'] : {}

  def version = File.read(VERSION_FILE).strip

  def edition = Dir.exist?('/opt/gitlab/embedded/service/gitlab-rails/ee') ? 'ee' : 'ce'

  def db_env
    r = rails
    abort('stand-in: gitlab.rb sets no gitlab_rails[\'db_host\'] (external PostgreSQL)') if r['db_host'].to_s.empty?
    { 'PGHOST' => r['db_host'].to_s, 'PGPORT' => (r['db_port'] || 5432).to_s, 'PGUSER' => r['db_username'].to_s,
      'PGPASSWORD' => r['db_password'].to_s, 'PGDATABASE' => (r['db_database'] || 'gitlabhq_production').to_s,
      'PGSSLMODE' => 'disable', 'PGCONNECT_TIMEOUT' => '10' }
  end

  def redis_env
    r = rails
    abort('stand-in: gitlab.rb sets no gitlab_rails[\'redis_host\'] (external Redis)') if r['redis_host'].to_s.empty?
    { 'REDISCLI_AUTH' => r['redis_password'].to_s }
  end

  def redis_args = ['-h', rails['redis_host'].to_s, '-p', (rails['redis_port'] || 6379).to_s]

  # psql with gitlab.rb's values; returns [stdout, stderr, status]
  def psql(sql, *args) = Open3.capture3(db_env, 'psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', *args, stdin_data: sql)

  def redis(*args) = Open3.capture3(redis_env, 'redis-cli', *redis_args, *args)

  def secrets_file = File.join(ETC, 'gitlab-secrets.json')

  # What the database "expects": a digest of db_key_base, stored at the first reconfigure.
  def secrets_digest
    JSON.parse(File.read(secrets_file)).dig('gitlab_rails', 'db_key_base').then { |k| Digest::SHA256.hexdigest(k.to_s) }
  end

  def service_running?(svc)
    out, = Open3.capture2('gitlab-ctl', 'status', svc, err: File::NULL)
    out.start_with?('run:')
  end
end
