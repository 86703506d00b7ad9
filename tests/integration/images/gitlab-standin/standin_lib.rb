# frozen_string_literal: true
#
# Shared helpers of the GitLab STAND-IN's commands (gitlab-cluster-test): read
# /etc/gitlab/gitlab.rb the way the stand-in's reconfigure does, and connect to
# the EXTERNAL PostgreSQL and Redis it names with its values (psql, redis-cli,
# pg_dump, passwords passed in the environment, never on a command line).
require 'json'
require 'open3'
require 'digest'
require 'net/http'
require 'uri'

module Standin
  # The GITLAB_STANDIN_* variables move the stand-in's paths; the image uses the defaults, the
  # stand-in's own self-test (selftest-gitaly.sh) points them at temp directories.
  ETC = ENV.fetch('GITLAB_STANDIN_ETC', '/etc/gitlab')
  VAR = ENV.fetch('GITLAB_STANDIN_VAR', '/var/opt/gitlab')
  RUN = ENV.fetch('GITLAB_STANDIN_RUN', '/run/gitlab-standin') # stopped/<svc> markers, gitaly.pid, gitaly.state
  LOG_DIR = ENV.fetch('GITLAB_STANDIN_LOG', '/var/log/gitlab')
  LOADER = File.join(__dir__, 'load_gitlab_rb.rb')
  VERSION_FILE = ENV.fetch('GITLAB_STANDIN_VERSION_FILE', '/opt/gitlab/embedded/service/gitlab-rails/VERSION')
  # What the last successful `gitlab-ctl reconfigure` loaded (what the node's services run with).
  SAVED_SETTINGS = File.join(VAR, 'standin-settings.json')
  TAG = '(gitlab-cluster-test STAND-IN, not GitLab)'

  module_function

  def say(msg) = puts("#{msg} #{TAG}")

  # Per node, under /var/log/gitlab (the host's <dataRoot>/logs): which migrations this node ran,
  # at which release, and whether SKIP_POST_DEPLOYMENT_MIGRATIONS was set. The upgrade test reads it.
  MIGRATIONS_LOG = File.join(LOG_DIR, 'standin-migrations.log')
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

# ---------------------------------------------------------------------------------------------
# The Gitaly tier of the STAND-IN. NOT Gitaly: the real Gitaly (gitlab.com/gitlab-org/gitaly)
# cannot be fetched here. A container whose loaded gitlab.rb has
# gitaly['configuration']['listen_addr'] and puma['enable'] = false is a "Gitaly stand-in node":
# its entrypoint runs gitaly_standin.rb, which serves the storages of gitaly['configuration'] over
# plain HTTP/1.1 (NOT gRPC) with `Authorization: Bearer <auth.token>` (real Gitaly authenticates
# gRPC calls with an HMAC derived from the token; the stand-in compares the token itself). Rails
# stand-in nodes whose gitlab_rails['repositories_storages'] name a tcp:// gitaly_address talk to
# it with gitlab_rails['gitaly_token'] (readiness, gitlab:check, gitlab-backup). Protocol:
#   GET  /standin-gitaly/health                       200 {"storages":[names],...}
#   GET  /standin-gitaly/backup?storage=NAME          200 tar stream (chunked) of the storage's path
#   PUT  /standin-gitaly/restore?storage=NAME         tar body -> replaces the storage's contents
#   POST /standin-gitaly/repo?storage=NAME&path=P.git creates a bare repository (Debian git)
#   GET  /standin-gitaly/repos?storage=NAME           200 {"storage":NAME,"repositories":[paths]}
module Standin
  module_function

  # The settings the last successful reconfigure wrote; nil when there are none (yet).
  def saved_settings
    JSON.parse(File.read(SAVED_SETTINGS))
  rescue Errno::ENOENT, JSON::ParserError
    nil
  end

  module Gitaly
    PREFIX = '/standin-gitaly'
    TAG = 'Gitaly STAND-IN (gitlab-cluster-test; plain HTTP/1.1, not gRPC; NOT Gitaly)'
    HEALTH_TTL = 5 # seconds a Rails node reuses the result of a health call
    class Error < StandardError; end

    module_function

    # settings.dig that tolerates non-hash values on the way
    def dig(h, *keys)
      keys.reduce(h) { |v, k| v.is_a?(Hash) ? v[k] : nil }
    end

    def configuration(s) = (c = dig(s, 'gitaly', 'configuration')).is_a?(Hash) ? c : {}
    def listen_addr(s) = (a = configuration(s)['listen_addr']).to_s.empty? ? nil : a.to_s
    def token(s) = dig(configuration(s), 'auth', 'token').to_s

    # A Gitaly stand-in node: it listens for Gitaly and runs no Puma.
    def node?(s) = !listen_addr(s).nil? && dig(s, 'puma', 'enable') == false

    # gitaly['enable'] (default true, as in Omnibus)
    def enabled?(s) = dig(s, 'gitaly', 'enable') != false

    # "0.0.0.0:8075" / "[::]:8075" / ":8075" -> [host, port]
    def parse_listen(addr)
      m = addr.to_s.match(/\A(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})\z/)
      raise Error, "gitaly['configuration'][:listen_addr] #{addr.inspect} is not HOST:PORT" unless m && m[3].to_i.between?(1, 65_535)

      host = m[1] || m[2]
      [host.to_s.empty? ? '0.0.0.0' : host, m[3].to_i]
    end

    # gitaly['configuration'][:storage] -> [{'name' =>, 'path' =>}]; raises Error on a malformed list
    def storages(s)
      list = configuration(s)['storage']
      return [] if list.nil?
      raise Error, "gitaly['configuration'][:storage] must be a list of { name:, path: }" unless list.is_a?(Array)

      list.map do |st|
        name = st.is_a?(Hash) ? st['name'].to_s : ''
        path = st.is_a?(Hash) ? st['path'].to_s : ''
        raise Error, "gitaly storage #{st.inspect}: needs a name and an absolute path" if name.empty? || !path.start_with?('/')

        { 'name' => name, 'path' => path }
      end
    end

    # Checks every member of the tar at `file` as GNU tar lists it (so as it would extract it):
    # only regular files and directories, relative names without `..`. Returns the member count;
    # raises Error naming the first offending member.
    def check_tar_members(file)
      names, e1, s1 = Open3.capture3('tar', '-tf', file)
      verbose, e2, s2 = Open3.capture3('tar', '--numeric-owner', '-tvf', file)
      raise Error, "not a readable tar archive: #{(e1 + e2).strip[0, 300]}" unless s1.success? && s2.success?

      names = names.split("\n")
      verbose = verbose.split("\n")
      raise Error, 'refused: the archive could not be listed consistently' unless names.size == verbose.size

      names.zip(verbose).each do |name, line|
        type = line[0]
        unless ['-', 'd'].include?(type)
          kind = { 'l' => 'a symlink', 'h' => 'a hard link', 'c' => 'a device', 'b' => 'a device', 'p' => 'a fifo' }.fetch(type, "of type #{type}")
          raise Error, "refused: member #{name.inspect} is #{kind} (only files and directories are restored)"
        end
        raise Error, "refused: member #{name.inspect} has an absolute name" if name.start_with?('/')
        raise Error, "refused: member #{name.inspect} contains '..'" if name.split('/').include?('..')
      end
      names.size
    end

    # A Rails node's gitlab_rails['repositories_storages'] -> {name => gitaly_address}
    def rails_storages(s)
      rs = dig(s, 'gitlab_rails', 'repositories_storages')
      return {} unless rs.is_a?(Hash)

      rs.to_h { |name, v| [name.to_s, dig(v, 'gitaly_address').to_s] }
    end

    # Does this Rails node keep its repositories on a Gitaly of another node?
    def remote?(s) = rails_storages(s).values.any? { |a| a.start_with?('tcp://') }

    def clients(s)
      rails_storages(s).map { |name, addr| Client.new(name, addr, dig(s, 'gitlab_rails', 'gitaly_token').to_s, local_gitaly: enabled?(s)) }
    end

    # One storage of a Rails node, reached at its gitaly_address with gitlab_rails['gitaly_token'].
    class Client
      attr_reader :name, :address

      def initialize(name, address, token, local_gitaly: true)
        @name = name
        @address = address
        @token = token
        @local_gitaly = local_gitaly
      end

      def label = "gitaly #{@name} at #{@address}"
      def remote? = @address.start_with?('tcp://')

      # [true, health JSON] or [false, "why"]: the storage must be among the storages it serves,
      # readable and writeable.
      def health
        unless remote?
          return [true, { 'local' => true }] if @local_gitaly && (@address.empty? || @address.start_with?('unix:'))

          why = @local_gitaly ? 'only tcp:// addresses are simulated by the stand-in' : "no local Gitaly (gitaly['enable'] = false)"
          return [false, "#{label}: #{why}"]
        end
        res = request(Net::HTTP::Get.new('/standin-gitaly/health'), open_timeout: 2, read_timeout: 5)
        return [false, "#{label}: #{describe(res)}"] unless res.code == '200'

        body = JSON.parse(res.body)
        st = Array(body['storage_statuses']).find { |x| x['name'] == @name }
        return [false, "#{label}: storage #{@name} is not served there (it serves: #{Array(body['storages']).join(', ')})"] unless st
        return [false, "#{label}: storage #{@name} is not readable and writeable there (#{st.to_json})"] unless st['readable'] && st['writeable']

        [true, body]
      rescue Error, SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout, JSON::ParserError, SocketError => e
        [false, "#{label}: #{why_failed(e)}"]
      end

      # Streams the storage's tar into the file at `dest`; raises Error
      def backup(dest)
        req = Net::HTTP::Get.new("/standin-gitaly/backup?#{URI.encode_www_form(storage: @name)}")
        http(read_timeout: 600).request(with_auth(req)) do |res|
          raise Error, "#{label}: backup: #{describe(res)}" unless res.code == '200'

          File.open(dest, 'wb') { |f| res.read_body { |chunk| f.write(chunk) } }
        end
        dest
      rescue SystemCallError, IOError, EOFError, Net::OpenTimeout, Net::ReadTimeout, SocketError => e
        raise Error, "#{label}: backup: #{why_failed(e)}"
      end

      # Replaces the storage's contents with the tar at `src`; raises Error
      def restore(src)
        req = Net::HTTP::Put.new("/standin-gitaly/restore?#{URI.encode_www_form(storage: @name)}")
        req['Content-Type'] = 'application/x-tar'
        req['Content-Length'] = File.size(src).to_s
        File.open(src, 'rb') do |f|
          req.body_stream = f
          res = http(read_timeout: 600).request(with_auth(req))
          raise Error, "#{label}: restore: #{describe(res)}" unless res.code == '200'

          JSON.parse(res.body)
        end
      rescue SystemCallError, IOError, EOFError, Net::OpenTimeout, Net::ReadTimeout, SocketError => e
        raise Error, "#{label}: restore: #{why_failed(e)}"
      end

      private

      def host_port
        u = URI.parse(@address.sub(%r{\Atcp://}, 'http://'))
        raise Error, "gitaly_address #{@address.inspect} is not tcp://HOST:PORT" unless u.host && u.port

        [u.host.delete_prefix('[').delete_suffix(']'), u.port]
      rescue URI::InvalidURIError
        raise Error, "gitaly_address #{@address.inspect} is not tcp://HOST:PORT"
      end

      def http(open_timeout: 5, read_timeout: 30)
        host, port = host_port
        Net::HTTP.new(host, port).tap do |h|
          h.open_timeout = open_timeout
          h.read_timeout = read_timeout
          h.write_timeout = read_timeout
        end
      end

      def with_auth(req)
        req['Authorization'] = "Bearer #{@token}"
        req
      end

      def request(req, **timeouts) = http(**timeouts).request(with_auth(req))

      def describe(res)
        return '401 token refused (gitlab_rails[\'gitaly_token\'] is not its auth token)' if res.code == '401'

        detail = (JSON.parse(res.body)['error'] rescue res.body.to_s[0, 200])
        "#{res.code} #{detail}".strip
      end

      def why_failed(e)
        case e
        when Errno::ECONNREFUSED then 'connection refused'
        when Net::OpenTimeout then 'connect timeout'
        when Net::ReadTimeout then 'read timeout'
        when Error then e.message
        else "#{e.class}: #{e.message}"
        end
      end
    end

    # Health per storage, each result reused for HEALTH_TTL seconds (keyed by name, address and
    # token, so a reconfigure that changes them is seen at once). Thread-safe.
    class HealthCache
      def initialize(ttl = HEALTH_TTL)
        @ttl = ttl
        @mutex = Mutex.new
        @entries = {}
      end

      # -> [[client, ok, detail], ...]
      def check(clients)
        clients.map do |c|
          key = [c.name, c.address, Digest::SHA256.hexdigest(c.instance_variable_get(:@token).to_s)]
          @mutex.synchronize do
            at, ok, detail = @entries[key]
            if at.nil? || Process.clock_gettime(Process::CLOCK_MONOTONIC) - at > @ttl
              ok, detail = c.health
              @entries[key] = [Process.clock_gettime(Process::CLOCK_MONOTONIC), ok, detail]
            end
            [c, ok, detail]
          end
        end
      end
    end
  end
end

module Standin
  # One HTTP/1.1 connection of a stand-in server (GitLab's or Gitaly's): buffered reads with a
  # timeout, a header-size limit, and bodies read straight from the socket.
  class Conn
    READ_TIMEOUT = 120 # seconds without progress before a connection is dropped
    MAX_HEADER = 64 * 1024
    class HeaderTooLarge < StandardError; end

    def initialize(sock) = (@s = sock; @buf = +''.b)
    def sock = @s

    def fill
      raise EOFError unless IO.select([@s], nil, nil, READ_TIMEOUT)

      @buf << @s.readpartial(1024 * 1024)
    end

    def gets_line
      until (i = @buf.index("\r\n"))
        raise HeaderTooLarge, 'header too large' if @buf.bytesize > MAX_HEADER

        fill
      end
      @buf.slice!(0, i + 2).chomp("\r\n")
    end

    # Reads exactly n bytes and writes them to io (discards them without one); returns n.
    def copy(n, io = nil)
      left = n
      unless @buf.empty?
        take = [left, @buf.bytesize].min
        data = @buf.slice!(0, take)
        io&.write(data)
        left -= take
      end
      while left.positive? # straight from the socket, nothing buffered
        raise EOFError unless IO.select([@s], nil, nil, READ_TIMEOUT)

        data = @s.readpartial([left, 1024 * 1024].min)
        io&.write(data)
        left -= data.bytesize
      end
      n
    end

    def discard(n) = copy(n)

    def read_exact(n)
      fill while @buf.bytesize < n
      @buf.slice!(0, n)
    end

    def write(data) = @s.write(data)
    def close = (@s.close rescue nil)
  end
end
