"""A seccomp filter for sandboxed children: the kernel itself refuses new processes and threads, exec, sockets,
namespaces, tracing and signals to other processes (EPERM), whatever a program does to Python around it.

Built once per worker with ctypes (no libseccomp needed); installed in each child after its other walls.
"""

from __future__ import annotations

import ctypes
import errno
import platform

PR_SET_NO_NEW_PRIVS = 38  # linux/prctl.h: required to install a filter without CAP_SYS_ADMIN
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000 | errno.EPERM
RET_KILL_PROCESS = 0x80000000
LOAD_WORD, JUMP_EQUAL, JUMP_AT_LEAST, RETURN = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
X32_BIT = 0x40000000  # x86-64's x32 syscall numbers: same audit arch, different table, so refused wholesale

# per machine: (audit arch, {syscall: number}); names are the syscalls refused
REFUSED = {
    "x86_64": (0xC000003E, {
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435, "socket": 41,
        "socketpair": 53, "ptrace": 101, "unshare": 272, "setns": 308, "mount": 165, "kill": 62,
        "pidfd_send_signal": 424, "process_vm_readv": 310, "process_vm_writev": 311}),
    "aarch64": (0xC00000B7, {
        "clone": 220, "execve": 221, "execveat": 281, "clone3": 435, "socket": 198, "socketpair": 199,
        "ptrace": 117, "unshare": 97, "setns": 268, "mount": 40, "kill": 129, "pidfd_send_signal": 424,
        "process_vm_readv": 270, "process_vm_writev": 271}),
}


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def build_filter():
    """The filter program for this machine, or None on a machine it does not know (the other walls remain)."""
    machine = platform.machine()
    if machine not in REFUSED:
        return None
    arch, numbers = REFUSED[machine]
    program = [
        (LOAD_WORD, 0, 0, 4),               # seccomp_data.arch
        (JUMP_EQUAL, 1, 0, arch),
        (RETURN, 0, 0, RET_KILL_PROCESS),   # another ABI (e.g. 32-bit int 0x80): its numbers differ, so kill
        (LOAD_WORD, 0, 0, 0),               # seccomp_data.nr
        (JUMP_AT_LEAST, 0, 1, X32_BIT),
        (RETURN, 0, 0, RET_KILL_PROCESS),
    ]
    for number in sorted(numbers.values()):
        program += [(JUMP_EQUAL, 0, 1, number), (RETURN, 0, 0, RET_ERRNO)]
    program.append((RETURN, 0, 0, RET_ALLOW))
    filters = (SockFilter * len(program))(*[SockFilter(*line) for line in program])
    fprog = SockFprog(len(program), filters)
    fprog._keep = filters  # the array must live as long as the struct that points at it
    return fprog


def install(libc, fprog) -> bool:
    """Installs the filter in the calling process (irrevocably, inherited by nothing since nothing can fork)."""
    if libc is None or fprog is None:
        return False
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
