//! x86_64 page tables: the boot assembly identity-maps 0..4 GiB with 2 MiB pages
//! (`kiln_bare_boot_pml4` -> one PDPT -> four page directories, `kiln_bare_boot_pd`).
