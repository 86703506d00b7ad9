# Loads a gitlab.rb the way Omnibus does (Ruby evaluated against attribute hashes such as
# gitlab_rails, nginx, postgresql) and prints every setting as JSON. A stand-in for
# Omnibus's config loader: it checks that the file is valid Ruby and what each setting holds.
require 'json'

class OmnibusConfigStub
  attr_reader :settings

  def initialize
    @settings = {}
  end

  def external_url(url)
    @settings['external_url'] = url
  end

  def method_missing(name, *args)
    return super unless args.empty? && name.to_s.match?(/\A[a-z][a-z0-9_]*\z/)
    @settings[name.to_s] ||= {}
  end

  def respond_to_missing?(_name, _include_private = false)
    true
  end
end

path = ARGV.fetch(0)
stub = OmnibusConfigStub.new
stub.instance_eval(File.read(path, encoding: 'UTF-8'), path)
puts JSON.generate(stub.settings)
