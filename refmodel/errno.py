"""errno values of include/uapi/asm-generic/errno-base.h and errno.h (x86-64)."""

from enum import IntEnum


class Errno(IntEnum):
    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EINTR = 4
    EIO = 5
    EBADF = 9
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    ENODEV = 19
    EINVAL = 22
    ENFILE = 23
    EFBIG = 27
    ENOSPC = 28
    EOVERFLOW = 75
    EOPNOTSUPP = 95


def err(e: Errno) -> int:
    """The value a syscall returns for an error: ``-errno``."""
    return -int(e)


def is_err_value(x: int) -> bool:
    """Models IS_ERR_VALUE: the top 4095 values of an unsigned long, or a negative int."""
    return -4095 <= x < 0 or x >= (1 << 64) - 4095
