#include "vm/vm_state.h"

#include <string.h>
#include <sys/ioctl.h>

int vm_state_save(struct vm *vm, struct vm_state *s, struct err *e)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->version = VM_STATE_VERSION;
	for (i = 0; i < 3; i++) {
		s->chips[i].chip_id = (uint32_t)i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->chips[i]) < 0)
			return err_sys(e, -errno, "KVM_GET_IRQCHIP %d", i);
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return err_sys(e, -errno, "KVM_GET_PIT2");
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		return err_sys(e, -errno, "KVM_GET_CLOCK");
	return 0;
}

int vm_state_validate(const struct vm_state *s, struct err *e)
{
	int i;

	if (s->version != VM_STATE_VERSION)
		return err_set(e, -EPROTO, "VM state version %u not supported (expected %u)",
			       s->version, VM_STATE_VERSION);
	for (i = 0; i < 3; i++)
		if (s->chips[i].chip_id != (uint32_t)i)
			return err_set(e, -EINVAL, "VM state: irqchip %d has id %u", i, s->chips[i].chip_id);
	for (i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &s->pit.channels[i];
		/* modes 0-5 (0xff: never programmed); read/write states 0-4 */
		if ((c->mode > 5 && c->mode != 0xff) || c->read_state > 4 ||
		    c->write_state > 4 || c->rw_mode > 3)
			return err_set(e, -EINVAL, "VM state: PIT channel %d fields out of range", i);
	}
	if (s->chips[2].chip.ioapic.id > 0xff || s->chips[2].chip.ioapic.base_address != 0xfec00000ULL)
		return err_set(e, -EINVAL, "VM state: IOAPIC id or base address out of range");
	for (i = 0; i < 2; i++) {
		const struct kvm_pic_state *p = &s->chips[i].chip.pic;
		/* vectors come in blocks of 8; the init sequence has 4 steps */
		if (p->irq_base & 7 || p->init_state > 3 || p->read_reg_select > 1 || p->poll > 1 ||
		    p->special_mask > 1 || p->auto_eoi > 1 || p->rotate_on_auto_eoi > 1 ||
		    p->special_fully_nested_mode > 1 || p->init4 > 1 || p->priority_add > 7)
			return err_set(e, -EINVAL, "VM state: PIC %d fields out of range", i);
	}
	if (s->pit.channels[0].count > 0x10000 || s->pit.channels[1].count > 0x10000 ||
	    s->pit.channels[2].count > 0x10000)
		return err_set(e, -EINVAL, "VM state: PIT count beyond 16 bits");
	return 0;
}

int vm_state_load(struct vm *vm, const struct vm_state *s, struct err *e)
{
	struct kvm_pit_state2 pit;
	int i, r;

	r = vm_state_validate(s, e);
	if (r < 0)
		return r;
	pit = s->pit;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return err_sys(e, -errno, "KVM_SET_PIT2");
	for (i = 0; i < 3; i++) {
		struct kvm_irqchip c = s->chips[i];
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c) < 0)
			return err_sys(e, -errno, "KVM_SET_IRQCHIP %d", i);
	}
	return 0;
}

int vm_state_load_clock(struct vm *vm, const struct vm_state *s, struct err *e)
{
	struct kvm_clock_data c = { .clock = s->clock.clock };

	/* Only the clock value: the host-specific TSC/realtime fields mean nothing here. */
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		return err_sys(e, -errno, "KVM_SET_CLOCK");
	return 0;
}
