# Renders the templates of one BOSH job the way a BOSH director does.
#
# Protocol (see render.go): stdin is one JSON document
#   {"job": "<job name>", "spec": {<instance spec hash>}, "templates": [{"src", "dest", "body" (base64)}]}
# and the single JSON document written to the original stdout is
#   {"rendered": [{"src", "dest", "body" (base64)}], "errors": [{"src", "template", "line", "message", "class"}]}
# Anything a template prints goes to stderr, so it cannot corrupt the result.
#
# The evaluation context below offers the template API of bosh-common's template/evaluation_context.rb and
# evaluation_link.rb (cloudfoundry/bosh src/bosh-common/lib/bosh/common/template/): p, if_p (.else,
# .else_if_p), link (.p, .if_p, .instances, .address), if_link (.else, .else_if_link), spec, name, index,
# properties. Error messages are BOSH's, so operators see the same text from this director and a real one.

require 'erb'
require 'json'

# Hash-backed read-mostly struct, used when ostruct cannot be loaded (newer Rubies ship it as a bundled gem, which
# --disable-gems hides). It offers what templates use of OpenStruct: readers, [], to_h, respond_to?.
class FallbackStruct
  def initialize(hash = nil)
    @table = {}
    (hash || {}).each { |k, v| @table[k.to_sym] = v }
  end

  def [](key)
    @table[key.to_sym]
  end

  def []=(key, value)
    @table[key.to_sym] = value
  end

  def to_h
    @table.dup
  end

  def each_pair(&block)
    @table.each_pair(&block)
  end

  def ==(other)
    other.is_a?(FallbackStruct) && to_h == other.to_h
  end

  def respond_to_missing?(name, include_private = false)
    @table.key?(name.to_s.chomp('=').to_sym) || super
  end

  def method_missing(name, *args)
    key = name.to_s
    return @table[key.chomp('=').to_sym] = args.first if key.end_with?('=') && args.length == 1
    return @table[name] if args.empty?

    super
  end
end

STRUCT_BASE = begin
  require 'ostruct'
  OpenStruct
rescue LoadError
  FallbackStruct
end

RESULT_IO = STDOUT.dup
STDOUT.reopen(STDERR)
$stdout = STDOUT

module Bosh
  module Template
    # Raised by p() when none of the names is set and no default was given.
    class UnknownProperty < StandardError
      attr_reader :names

      def initialize(names)
        @names = names
        # An Array interpolates as its inspect form: Can't find property '["a.b"]'
        super("Can't find property '#{names}'")
      end
    end

    # Raised by link() for a link the job does not have.
    class UnknownLink < StandardError
      def initialize(name)
        super("Can't find link '#{name}'")
      end
    end

    # Dotted-name lookups shared by the context and by links.
    module Lookup
      # Walks a dotted name through nested hashes; nil as soon as a step is missing.
      def dig_dotted(tree, dotted)
        return nil if tree.nil?

        node = tree
        dotted.to_s.split('.').each do |segment|
          node = node[segment]
          return nil if node.nil?
        end
        node
      end

      # p() semantics: the first non-nil value among the names, else the default (when one was passed), else raise.
      def first_value(tree, args)
        names = Array(args[0])
        names.each do |n|
          v = dig_dotted(tree, n)
          return v unless v.nil?
        end
        return args[1] if args.length == 2

        raise UnknownProperty, names
      end

      # if_p() semantics: run the block with all values when every name is set (false counts as set).
      def when_all_set(tree, names, context)
        values = []
        names.each do |n|
          v = dig_dotted(tree, n)
          return Branch::Open.new(context) if v.nil?

          values << v
        end
        yield(*values)
        Branch::Closed.new
      end
    end

    # What if_p / if_link return: Open when their block did not run, so .else (or .else_if_*) may; Closed otherwise.
    module Branch
      class Open
        def initialize(context)
          @context = context
        end

        def else
          yield
        end

        def else_if_p(*names, &block)
          @context.if_p(*names, &block)
        end

        def else_if_link(name, &block)
          @context.if_link(name, &block)
        end
      end

      class Closed
        def else; end

        def else_if_p(*_names)
          Closed.new
        end

        def else_if_link(_name)
          Closed.new
        end
      end
    end

    # A struct whose methods(false) lists its keys, so spec.networks.methods(false) yields the network names.
    class SpecStruct < STRUCT_BASE
      def methods(regular = true)
        return super if regular

        to_h.keys.map(&:to_sym)
      end
    end

    # One instance of a link's provider group.
    class EvaluationLinkInstance
      attr_reader :name, :index, :id, :az, :address, :properties, :bootstrap

      def initialize(h)
        @name = h['name']
        @index = h['index']
        @id = h['id']
        @az = h['az']
        @address = h['address']
        @properties = h['properties']
        @bootstrap = h['bootstrap']
      end
    end

    # What link('x') returns.
    class EvaluationLink
      include Lookup
      attr_reader :instances, :properties

      def initialize(h)
        @instances = (h['instances'] || []).map { |i| EvaluationLinkInstance.new(i) }
        @properties = h['properties'] || {}
        @address = h['address']
      end

      def p(*args)
        first_value(@properties, args)
      end

      def if_p(*names, &block)
        when_all_set(@properties, names, self, &block)
      end

      # The director computes the address (a DNS query name or a manual link's address); criteria such as azs: are
      # accepted for compatibility and do not change it.
      def address(_criteria = {})
        @address
      end
    end

    # The object a template's binding belongs to.
    class EvaluationContext
      include Lookup
      attr_reader :name, :index, :properties, :raw_properties, :spec

      def initialize(spec)
        @name = spec['job'].is_a?(Hash) ? spec['job']['name'] : nil
        @index = spec['index']
        @spec = structify(spec, SpecStruct)
        @raw_properties = spec['properties'] || {}
        @properties = structify(@raw_properties, STRUCT_BASE)
        @links = spec['links'] || {}
      end

      def get_binding
        binding
      end

      def p(*args)
        first_value(@raw_properties, args)
      end

      def if_p(*names, &block)
        when_all_set(@raw_properties, names, self, &block)
      end

      def link(name)
        found = link_hash(name)
        raise UnknownLink, name if found.nil?

        EvaluationLink.new(found)
      end

      def if_link(name)
        found = link_hash(name)
        return Branch::Open.new(self) if found.nil?

        yield EvaluationLink.new(found)
        Branch::Closed.new
      end

      private

      # A link counts only when its hash carries instances.
      def link_hash(name)
        h = dig_dotted(@links, name)
        h.is_a?(Hash) && h.key?('instances') ? h : nil
      end

      def structify(value, klass)
        case value
        when Hash
          klass.new(value.each_with_object({}) { |(k, v), acc| acc[k] = structify(v, klass) })
        when Array
          value.map { |v| structify(v, klass) }
        else
          value
        end
      end
    end
  end
end

def utf8(text)
  text.to_s.dup.force_encoding(Encoding::UTF_8).scrub
end

# Describes a failed template as BOSH does: the template file and the line come from the first backtrace entry
# inside the ERB-generated code (its filename is "<job>/<src>").
def failure(exc, filename, src)
  where = Array(exc.backtrace).find { |l| l.include?(filename) }
  if where.nil? && exc.is_a?(SyntaxError) && (m = exc.message.match(/\A#{Regexp.escape(filename)}:(\d+):/))
    # Syntax errors carry their position in the message, not the backtrace (BOSH prints "(unknown)" here).
    where = "#{filename}:#{m[1]}"
  end
  file, line = (where || '(unknown):(unknown)').split(':')
  { 'src' => src, 'template' => File.basename(file), 'line' => line.to_s, 'message' => utf8(exc.to_s),
    'class' => exc.class.name }
end

input = JSON.parse(STDIN.read)
spec = input.fetch('spec')
job = input.fetch('job')
frozen_spec = Marshal.dump(spec)
out = { 'rendered' => [], 'errors' => [] }

input.fetch('templates').each do |t|
  src = t.fetch('src')
  filename = File.join(job, src)
  begin
    erb = ERB.new(t.fetch('body').to_s.unpack1('m0').force_encoding(Encoding::UTF_8), trim_mode: '-')
    erb.filename = filename
    # A fresh context per template, as BOSH deep-copies it: nothing one template does leaks into the next.
    context = Bosh::Template::EvaluationContext.new(Marshal.load(frozen_spec))
    text = erb.result(context.get_binding)
    out['rendered'] << { 'src' => src, 'dest' => t.fetch('dest'), 'body' => [text].pack('m0') }
  rescue Exception => e # rubocop:disable Lint/RescueException -- BOSH reports every failure, SystemExit included
    out['errors'] << failure(e, filename, src)
  end
end

RESULT_IO.write(JSON.generate(out))
RESULT_IO.flush
