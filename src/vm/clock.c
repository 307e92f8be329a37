#include "vm/clock.h"

#include <string.h>
#include <sys/ioctl.h>

int clock_hold(struct vm *vm, struct clock_hold *h, struct err *e)
{
	memset(h, 0, sizeof(*h));
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &h->pit) < 0)
		return err_sys(e, -errno, "KVM_GET_PIT2");
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &h->kvmclock) < 0)
		return err_sys(e, -errno, "KVM_GET_CLOCK");
	h->held = true;
	return 0;
}

int clock_release(struct vm *vm, struct clock_hold *h, struct err *e)
{
	struct kvm_clock_data c = { .clock = h->kvmclock.clock };

	if (!h->held)
		return 0;
	h->held = false;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &h->pit) < 0)
		return err_sys(e, -errno, "KVM_SET_PIT2");
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		return err_sys(e, -errno, "KVM_SET_CLOCK");
	return 0;
}
