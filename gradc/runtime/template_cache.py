"""jinja2's compiled templates kept in gradc's cache folder, so a new process skips compiling them.

Compiling the big macro tables (numpy/ops.j2, the CUDA and C tables) into Python code is most of
what a process pays the first time it generates code; the result depends only on the template's
source, its file name, the environment's options and filters, jinja2's version and the Python
that runs it. That is what names an entry (the SHA-256 of all of it), under `<cache>/templates/`.

An entry is a header line, the SHA-256 of the marshalled code and the code itself. It is written
with `cache.write_entry` (a temporary file renamed into place: a reader sees a whole entry or
none) and used only when its header, its length and its recorded hash all check out and it
unmarshals to a code object; anything else (truncated, damaged, from another format) is ignored,
the template is compiled again and the entry rewritten. Unlike the generated code, an entry is not
synced to disk before the rename: what a crash could leave behind fails the hash check and is
rebuilt, and a cold compile does not wait for the disk. A cache folder that cannot be written
gives the cache's one warning and templates are compiled in memory."""
import hashlib
import marshal
import sys
import types

import jinja2

from . import cache

KIND = "templates"
MAGIC = b"gradc jinja2 bytecode 1\n"
_OPTIONS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
            "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
            "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized",
            "autoescape")


def _environment_key(env):
    """What of the environment the compiled code depends on: its syntax options, and the names of
    its filters and tests with how each is called (a filter that takes the context compiles
    differently)."""
    options = [repr(getattr(env, name, None)) for name in _OPTIONS]
    callables = [f"{kind}:{name}:{getattr(fn, 'jinja_pass_arg', None)!r}"
                 for kind, table in (("filter", env.filters), ("test", env.tests)) for name, fn in sorted(table.items())]
    return "\n".join(options + callables + [f"extensions:{sorted(env.extensions)}"])


class TemplateBytecodeCache(jinja2.BytecodeCache):
    """A jinja2 BytecodeCache over gradc's cache folder (see the module docs)."""

    def path(self, bucket):
        key = hashlib.sha256("\0".join((bucket.key, bucket.checksum, jinja2.__version__, sys.version,
                                        sys.implementation.cache_tag or "",
                                        _environment_key(bucket.environment))).encode()).hexdigest()
        return cache.cache_dir() / KIND / key[:2] / f"{key}.jinja"

    def load_bytecode(self, bucket):
        try:
            data = self.path(bucket).read_bytes()
        except OSError:
            return
        code = decode(data)
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket):
        cache.sweep()
        cache.write_entry(self.path(bucket), encode(bucket.code), sync=False)


def encode(code):
    payload = marshal.dumps(code)
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def decode(data):
    """The code object an entry holds, or None when the entry is not whole and exactly as written."""
    head = len(MAGIC) + 65
    if len(data) <= head or not data.startswith(MAGIC) or data[head - 1:head] != b"\n":
        return None
    payload = data[head:]
    if hashlib.sha256(payload).hexdigest().encode() != data[len(MAGIC):head - 1]:
        return None
    try:
        code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None
