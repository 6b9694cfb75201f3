#!/usr/bin/env python3
"""Where the allocations of a `perf record --call-graph dwarf` of allocation uprobes were made
(bench/allocs_per_read with ALLOC_STACKS=FILE writes one). Reads `perf script -F event,ip,sym`
on stdin; prints each allocation site (the first frames that are not the allocator's or a
collection's generic code, inlined frames included) with its count and share, most first.
Divide a site's count by the requests of the recording to get its allocations per request.

    perf script -i FILE -F event,ip,sym | bench/alloc_sites.py [TOP]
"""
import collections, re, sys

# Frames that say how memory is obtained, not who wants it.
GENERIC = re.compile(
    r"^(__GI___libc|__libc|malloc|_int_|realloc|calloc|__posix_memalign|std::sys::alloc|"
    r"<std::alloc::System|__rustc::|alloc \(|alloc_impl|allocate|allocate_for|box_new|"
    r"new_uninit|try_allocate_in|with_capacity|to_vec|to_owned|copy_from_slice|from_slice|"
    r"finish_grow|grow|do_reserve_and_handle|reserve|do_alloc|fallible_with_capacity|"
    r"new_uninitialized|prepare_resize|resize_inner|from_elem|<alloc::|alloc:|pin<|new<alloc|"
    r"new<core|from \(|from<u8|into<|from_iter|collect|try_process|\{closure#0\}<u8)")
EVENTS = ("probe_libc:malloc", "probe_libc:realloc", "probe_libc:calloc",
          "probe_libc:posix_memalign", "probe_libc:aligned_alloc")


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    sites, n = collections.Counter(), 0
    event, frames = None, []

    def flush():
        nonlocal n
        if event in EVENTS:
            n += 1
            wanted = [f for f in frames if not GENERIC.match(f)]
            sites["  <  ".join(f[:80] for f in wanted[:4]) or "?"] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            event, frames = None, []
        elif "probe_libc:" in line and not re.match(r"^\s*[0-9a-f]+ ", line):
            event = re.search(r"probe_libc:\w+", line).group(0)
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1].replace(" (inlined)", ""))
    flush()
    print(f"{n} allocations recorded")
    for site, count in sites.most_common(top):
        print(f"{count:8d} {100 * count / max(n, 1):5.1f}%  {site}")


if __name__ == "__main__":
    main()
