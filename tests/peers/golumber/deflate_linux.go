package main

import (
	"runtime"
	"syscall"
	"unsafe"
)

func uintptrOf(ts *syscall.Timespec) uintptr { return uintptr(unsafe.Pointer(ts)) }

func lockThread() { runtime.LockOSThread() }
