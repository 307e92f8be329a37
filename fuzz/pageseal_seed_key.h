/* The page key fuzz_pageseal opens with, and gen_seeds seals its seeds with. */
#ifndef SEALVM_FUZZ_PAGESEAL_SEED_KEY_H
#define SEALVM_FUZZ_PAGESEAL_SEED_KEY_H

#define PAGESEAL_SEED_KEY                                                                                   \
	{                                                                                                   \
		.key = { 0x70, 0x61, 0x67, 0x65, 0x6b, 0x65, 0x79, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, \
			 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24 },                                  \
		.vm_id = { 0x76, 0x6d, 0x69, 0x64, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xff, 0xfe },                \
		.epoch = 3,                                                                                 \
	}

#endif
