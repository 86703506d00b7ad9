#!/usr/bin/ruby
# frozen_string_literal: true
#
# Gitaly STAND-IN of the GitLab Omnibus stand-in image (gitlab-cluster-test). It is NOT Gitaly:
# the real Gitaly cannot be fetched in the test environment. It speaks plain HTTP/1.1, NOT gRPC,
# and exists so that a "Gitaly node" of the cluster holds the repositories, Rails stand-in nodes
# really reach it over the network with a token, and backups really stream through it.
#
# Runs on a Gitaly stand-in node: the loaded gitlab.rb (standin-settings.json, written by
# `gitlab-ctl reconfigure`) has gitaly['configuration'][:listen_addr] and puma['enable'] = false.
#
#   gitaly_standin.rb                   serve (the entrypoint execs it instead of server.rb)
#   gitaly_standin.rb --is-gitaly-node  exit 0 if the saved settings describe a Gitaly node, else 1
#
# Every request needs `Authorization: Bearer <gitaly['configuration'][:auth][:token]>`: 401 and a
# log line (REFUSED ...) otherwise. As real Gitaly, an empty/unset token disables authentication
# (health then says "auth": "none", and every request is logged as unauthenticated).
#   GET  /standin-gitaly/health                        200 {"storages":[names],"storage_statuses":[...],"auth":"token"|"none",...}
#   GET  /standin-gitaly/backup?storage=NAME           200 application/x-tar, chunked: `tar -c` of the storage's
#                                                      path (members ./...); a failed tar ends the connection
#                                                      without the last chunk (the client sees a truncated body)
#   PUT  /standin-gitaly/restore?storage=NAME          body: a tar (Content-Length or chunked). Members must be
#                                                      regular files or directories with relative names without
#                                                      `..` (else 400, nothing changed); extracted with
#                                                      --no-same-owner into a fresh directory next to the storage,
#                                                      chowned to the storage directory's owner, then swapped in.
#                                                      200 {"restored":NAME,"members":N,"bytes":N}
#   POST /standin-gitaly/repo?storage=NAME&path=G/P.git  201 created (`git init --bare` when git is installed,
#                                                      else a directory); 200 {"created":false} if it exists
#   GET  /standin-gitaly/repos?storage=NAME            200 {"storage":NAME,"repositories":["G/P.git",...]}
# Unknown storage 404, bad parameters 400, wrong method 405. Connection: close, one thread per connection.
#
# Settings: re-read on every request when standin-settings.json changed (token, storages), and on
# SIGHUP (reconfigure sends it): a new listen_addr closes the listener and opens the new one.
# `gitlab-ctl stop gitaly` (the marker $GITLAB_STANDIN_RUN/stopped/gitaly + SIGHUP) CLOSES the
# listener: connections are refused, as with a stopped Gitaly; `gitlab-ctl start gitaly` reopens it.
# Files: $GITLAB_STANDIN_RUN/gitaly.pid, gitaly.state ("listening ADDR" | "stopped" | ...),
# log lines on stdout and in $GITLAB_STANDIN_LOG/gitaly/standin.log.
require 'socket'
require 'json'
require 'openssl'
require 'fileutils'
require 'tmpdir'
require 'open3'
require 'uri'
require 'find'
require 'etc'
require_relative 'standin_lib'

G = Standin::Gitaly

if ARGV[0] == '--is-gitaly-node'
  s = Standin.saved_settings
  exit(s && G.node?(s) ? 0 : 1)
end

NODE = ENV['NODE_NAME'].to_s.empty? ? Socket.gethostname : ENV['NODE_NAME']
PIDFILE = File.join(Standin::RUN, 'gitaly.pid')
STATEFILE = File.join(Standin::RUN, 'gitaly.state')
STOPPED = File.join(Standin::RUN, 'stopped', 'gitaly')
LOGFILE = File.join(Standin::LOG_DIR, 'gitaly', 'standin.log')
REPO_PATH = %r{\A(?:[A-Za-z0-9_@][A-Za-z0-9._@-]*/){0,8}[A-Za-z0-9_@][A-Za-z0-9._@-]*\.git\z}

$stdout.sync = true
LOG_MUTEX = Mutex.new
def log(msg)
  line = "#{Time.now.utc.strftime('%FT%T.%3NZ')} gitaly-standin[#{NODE}] #{msg}"
  LOG_MUTEX.synchronize do
    puts line
    File.open(LOGFILE, 'a') { |f| f.puts(line) } rescue nil
  end
end

# The saved settings, re-read when the file changed (reconfigure renames a new one into place).
class Settings
  def initialize
    @mutex = Mutex.new
    @stamp = nil
    @settings = {}
  end

  def current
    @mutex.synchronize do
      st = (File.stat(Standin::SAVED_SETTINGS) rescue nil)
      stamp = st && [st.ino, st.mtime.to_r, st.size]
      if stamp != @stamp
        @settings = Standin.saved_settings || {}
        log("settings (re)read from #{Standin::SAVED_SETTINGS}#{@stamp ? ' (changed)' : ''}")
        @stamp = stamp
      end
      @settings
    end
  end
end
SETTINGS = Settings.new

STORAGE_LOCKS = Hash.new { |h, k| h[k] = Mutex.new }
STORAGE_LOCKS_MUTEX = Mutex.new
def storage_lock(name) = STORAGE_LOCKS_MUTEX.synchronize { STORAGE_LOCKS[name] }

class HttpError < StandardError
  attr_reader :status

  def initialize(status, msg)
    @status = status
    super(msg)
  end
end

Conn = Standin::Conn

def respond(c, status, body, extra = {})
  reason = { 200 => 'OK', 201 => 'Created', 400 => 'Bad Request', 401 => 'Unauthorized', 404 => 'Not Found',
             405 => 'Method Not Allowed', 409 => 'Conflict', 411 => 'Length Required', 431 => 'Request Header Fields Too Large',
             500 => 'Internal Server Error', 503 => 'Service Unavailable' }.fetch(status, 'Status')
  body = "#{JSON.generate(body)}\n" unless body.is_a?(String)
  hdr = +"HTTP/1.1 #{status} #{reason}\r\nContent-Type: application/json\r\nContent-Length: #{body.bytesize}\r\n"
  hdr << "X-Standin: #{G::TAG}\r\nConnection: close\r\n"
  extra.each { |k, v| hdr << "#{k}: #{v}\r\n" }
  c.write("#{hdr}\r\n#{body}")
  status
end

# body (Content-Length or chunked) -> io; returns bytes
def read_body(c, headers, io)
  if headers['transfer-encoding'].to_s.downcase.include?('chunked')
    total = 0
    loop do
      size = c.gets_line.split(';').first.to_s.strip.to_i(16)
      if size.zero?
        nil until c.gets_line.empty?
        return total
      end
      total += c.copy(size, io)
      c.read_exact(2)
    end
  elsif headers.key?('content-length')
    c.copy(Integer(headers['content-length'], 10), io)
  else
    raise HttpError.new(411, 'a body needs Content-Length or Transfer-Encoding: chunked')
  end
end

def authorized?(headers, settings)
  want = G.token(settings)
  return [true, 'auth disabled (no auth.token configured)'] if want.empty?

  got = headers['authorization'].to_s[/\ABearer (.*)\z/, 1]
  return [false, headers.key?('authorization') ? 'Authorization is not "Bearer <token>"' : 'no Authorization header'] if got.nil?
  return [false, "wrong token (#{got.bytesize} bytes)"] unless got.bytesize == want.bytesize && OpenSSL.fixed_length_secure_compare(got, want)

  [true, nil]
end

def storage_for(settings, params)
  name = params['storage'].to_s
  raise HttpError.new(400, 'storage=NAME is required') if name.empty?

  st = G.storages(settings).find { |x| x['name'] == name }
  raise HttpError.new(404, "storage #{name.inspect} is not configured here (storages: #{G.storages(settings).map { |x| x['name'] }.join(', ')})") unless st

  st
end

def owner_of(path)
  s = File.stat(path)
  [s.uid, s.gid]
end

def run!(*cmd, **kw)
  out, err, st = Open3.capture3(*cmd, **kw)
  raise HttpError.new(500, "#{cmd.first} failed: #{err.strip[0, 500]}") unless st.success?

  out
end

GIT = begin
  out, st = Open3.capture2e('git', '--version')
  st.success? ? out.strip : nil
rescue Errno::ENOENT
  nil
end

def health(settings)
  statuses = G.storages(settings).map do |st|
    p = st['path']
    { name: st['name'], path: p, readable: File.directory?(p) && File.readable?(p),
      writeable: File.directory?(p) && File.writable?(p) }
  end
  { storages: statuses.map { |x| x[:name] }, storage_statuses: statuses,
    auth: G.token(settings).empty? ? 'none' : 'token', node: NODE, git: GIT, standin: G::TAG }
end

def backup(c, st)
  path = st['path']
  raise HttpError.new(503, "storage #{st['name']}: #{path} does not exist") unless File.directory?(path)

  storage_lock(st['name']).synchronize do
    Open3.popen3('tar', '--numeric-owner', '-cf', '-', '-C', path, '.') do |stdin, stdout, stderr, wait|
      stdin.close
      err = Thread.new { stderr.read }
      c.write("HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n" \
              "X-Standin: #{G::TAG}\r\nX-Standin-Gitaly-Storage: #{st['name']}\r\nConnection: close\r\n\r\n")
      bytes = 0
      while (chunk = (stdout.readpartial(256 * 1024) rescue nil))
        c.write("#{chunk.bytesize.to_s(16)}\r\n#{chunk}\r\n")
        bytes += chunk.bytesize
      end
      if wait.value.success?
        c.write("0\r\n\r\n")
        log("backup of storage #{st['name']} (#{path}): #{bytes} bytes sent")
      else
        # no last chunk: the client sees a truncated body, not a short archive
        log("backup of storage #{st['name']} FAILED, connection cut: tar: #{err.value.strip[0, 300]}")
      end
    end
  end
  200
end

# Checks the members of the uploaded tar (Standin::Gitaly.check_tar_members); 400 when refused.
def check_members(file)
  G.check_tar_members(file)
rescue G::Error => e
  raise HttpError.new(400, e.message)
end

def restore(c, headers, st)
  path = st['path']
  parent = File.dirname(path)
  FileUtils.mkdir_p(parent)
  storage_lock(st['name']).synchronize do
    upload = File.join(parent, ".standin-restore-upload-#{Process.pid}-#{Thread.current.object_id}.tar")
    fresh = nil
    begin
      bytes = File.open(upload, File::WRONLY | File::CREAT | File::EXCL, 0o600) { |f| read_body(c, headers, f) }
      members = check_members(upload)
      uid, gid = File.directory?(path) ? owner_of(path) : owner_of(parent)
      mode = File.directory?(path) ? File.stat(path).mode & 0o7777 : 0o2770
      fresh = Dir.mktmpdir('.standin-restore-', parent)
      run!('tar', '-xf', upload, '-C', fresh, '--no-same-owner')
      FileUtils.chown_R(uid, gid, fresh)
      File.chmod(mode, fresh)
      swap_in(fresh, path)
      fresh = nil
      log("restore of storage #{st['name']} (#{path}): #{members} members, #{bytes} bytes, owner #{uid}:#{gid}")
      respond(c, 200, { restored: st['name'], members: members, bytes: bytes })
    ensure
      FileUtils.rm_f(upload)
      FileUtils.rm_rf(fresh) if fresh
    end
  end
end

# Replaces `path` by the directory `fresh` (same file system): rename both; where `path` cannot be
# renamed (a mount point), its children are replaced instead.
def swap_in(fresh, path)
  unless File.directory?(path)
    File.rename(fresh, path)
    return
  end
  old = "#{path}.standin-old-#{Process.pid}-#{Thread.current.object_id}"
  begin
    File.rename(path, old)
  rescue SystemCallError
    Dir.children(path).each { |ch| FileUtils.rm_rf(File.join(path, ch)) }
    Dir.children(fresh).each { |ch| File.rename(File.join(fresh, ch), File.join(path, ch)) }
    FileUtils.rm_rf(fresh)
    return
  end
  File.rename(fresh, path)
  FileUtils.rm_rf(old)
end

def create_repo(st, rel)
  raise HttpError.new(400, 'path=GROUP/PROJECT.git is required') if rel.to_s.empty?
  raise HttpError.new(400, "path #{rel.inspect} is not a relative GROUP/PROJECT.git path") unless REPO_PATH.match?(rel) && !rel.split('/').include?('..')

  base = st['path']
  raise HttpError.new(503, "storage #{st['name']}: #{base} does not exist") unless File.directory?(base)

  target = File.join(base, rel)
  return [200, { created: false, storage: st['name'], path: rel }] if File.exist?(target)

  uid, gid = owner_of(base)
  first_new = rel.split('/').each_index.map { |i| File.join(base, *rel.split('/')[0..i]) }.find { |p| !File.exist?(p) }
  storage_lock(st['name']).synchronize do
    FileUtils.mkdir_p(File.dirname(target))
    if GIT
      run!({ 'GIT_CONFIG_NOSYSTEM' => '1', 'HOME' => base }, 'git', '-c', 'init.defaultBranch=main', 'init', '--bare', '--quiet', target)
    else
      FileUtils.mkdir_p(target)
    end
    FileUtils.chown_R(uid, gid, first_new)
  end
  [201, { created: true, storage: st['name'], path: rel, kind: GIT ? "bare git repository (#{GIT})" : 'directory (git is not installed)' }]
end

def list_repos(st)
  base = st['path']
  raise HttpError.new(503, "storage #{st['name']}: #{base} does not exist") unless File.directory?(base)

  repos = []
  Find.find(base) do |p|
    next if p == base
    next unless File.directory?(p) && p.end_with?('.git')

    repos << p.delete_prefix("#{base}/")
    Find.prune
  end
  repos.sort
end

def handle(sock)
  c = Conn.new(sock)
  peer = (sock.remote_address.inspect_sockaddr rescue '?')
  request_line = c.gets_line
  meth, target, = request_line.split(' ', 3)
  headers = {}
  while (line = c.gets_line) && !line.empty?
    k, v = line.split(':', 2)
    headers[k.strip.downcase] = v.to_s.strip
  end
  path, query = target.to_s.split('?', 2)
  params = URI.decode_www_form(query.to_s).to_h
  settings = SETTINGS.current
  ok, why = authorized?(headers, settings)
  unless ok
    log("REFUSED #{peer} \"#{meth} #{path}\" 401: #{why}")
    respond(c, 401, { error: "401 Unauthorized: #{why}", standin: G::TAG }, 'WWW-Authenticate' => 'Bearer realm="gitaly-standin"')
    return
  end
  log("#{peer} \"#{meth} #{path}\" unauthenticated: #{why}") if why
  c.write("HTTP/1.1 100 Continue\r\n\r\n") if headers['expect'].to_s.casecmp?('100-continue') # curl -T waits for it
  allow = ->(*ms) { raise HttpError.new(405, "#{meth} not allowed on #{path} (#{ms.join(', ')})") unless ms.include?(meth) }
  status =
    case path
    when "#{G::PREFIX}/health"
      allow.call('GET')
      respond(c, 200, health(settings))
    when "#{G::PREFIX}/backup"
      allow.call('GET')
      backup(c, storage_for(settings, params))
    when "#{G::PREFIX}/restore"
      allow.call('PUT')
      restore(c, headers, storage_for(settings, params))
    when "#{G::PREFIX}/repo"
      allow.call('POST')
      code, body = create_repo(storage_for(settings, params), params['path'])
      log("repository #{params['path']} in storage #{params['storage']}: #{body[:created] ? 'created' : 'exists'}")
      respond(c, code, body)
    when "#{G::PREFIX}/repos"
      allow.call('GET')
      respond(c, 200, { storage: params['storage'], repositories: list_repos(storage_for(settings, params)) })
    else
      respond(c, 404, { error: "not found: #{path} (this is the Gitaly stand-in: plain HTTP, not gRPC)" })
    end
  log("#{peer} \"#{meth} #{path}#{query ? "?#{query}" : ''}\" #{status}")
rescue HttpError => e
  log("#{peer} \"#{meth} #{path}\" #{e.status}: #{e.message}")
  respond(c, e.status, { error: e.message }) rescue nil
rescue Conn::HeaderTooLarge => e
  log("#{peer} 431: #{e.message}")
  respond(c, 431, { error: e.message }) rescue nil
rescue G::Error => e
  log("#{peer} \"#{meth} #{path}\" 500: #{e.message}")
  respond(c, 500, { error: e.message }) rescue nil
rescue EOFError, IOError, Errno::ECONNRESET, Errno::EPIPE => e
  log("#{peer} connection ended early: #{e.class}") unless request_line.nil?
rescue StandardError => e
  log("#{peer} error: #{e.class}: #{e.message}")
  respond(c, 500, { error: "#{e.class}: #{e.message}" }) rescue nil
ensure
  c&.close
end

# --- main loop: keeps the listener as the settings and the stopped marker say -------------------
FileUtils.mkdir_p([Standin::RUN, File.dirname(LOGFILE)])
File.write(PIDFILE, "#{Process.pid}\n")
at_exit { FileUtils.rm_f([PIDFILE, STATEFILE]) if (File.read(PIDFILE).to_i rescue 0) == Process.pid }
wake_r, wake_w = IO.pipe
$hup = false
Signal.trap('HUP') { $hup = true; wake_w.write_nonblock('.', exception: false) }
Signal.trap('TERM') { exit 0 }
Signal.trap('INT') { exit 0 }

log("this is the Gitaly STAND-IN of gitlab-cluster-test, NOT Gitaly: plain HTTP/1.1, not gRPC (pid #{Process.pid})")
server = nil
bound = nil
last_state = nil
loop do
  if $hup
    $hup = false
    log('SIGHUP: settings re-read')
  end
  settings = SETTINGS.current
  state, want =
    if File.exist?(STOPPED) then ['stopped', nil]
    elsif !G.node?(settings) then ['not-a-gitaly-node (no gitaly listen_addr, or puma enabled)', nil]
    else ["listening #{G.listen_addr(settings)}", G.listen_addr(settings)]
    end
  if bound != want
    if server
      server.close
      log("listener on #{bound} closed (#{state})")
      server = nil
      bound = nil
    end
    if want
      begin
        host, port = G.parse_listen(want)
        server = TCPServer.new(host, port)
        bound = want
        log("listening on #{want}; storages: #{G.storages(settings).map { |s| "#{s['name']}=#{s['path']}" }.join(', ')}; " \
            "auth: #{G.token(settings).empty? ? 'NONE (no auth.token)' : 'token'}")
      rescue G::Error, SystemCallError, SocketError => e
        state = "cannot-listen #{want}: #{e.message}"
      end
    end
  end
  if state != last_state
    log("state: #{state}") unless state.start_with?('listening')
    File.write("#{STATEFILE}.tmp", "#{state}\n")
    File.rename("#{STATEFILE}.tmp", STATEFILE)
    last_state = state
  end
  ready, = IO.select([wake_r, server].compact, nil, nil, 1)
  next unless ready

  wake_r.read_nonblock(4096, exception: false) if ready.include?(wake_r)
  next unless server && ready.include?(server)

  sock = server.accept_nonblock(exception: false)
  Thread.new(sock) { |s| handle(s) } unless sock == :wait_readable
end
