/* Linked into every executable of the sanitizer build (WM_SANITIZE=ON) only. OpenMPI loads its
   components with dlopen and unloads them in MPI_Finalize, before LeakSanitizer looks at the heap;
   the stacks of the memory they never freed then point into unmapped code ("<unknown module>")
   and no suppression can name them. A dlclose that keeps every library loaded lets LeakSanitizer
   attribute those allocations to their libraries (mca_*.so, libopen-pal.so), which
   tests/sanitizers/lsan.supp suppresses. Nothing of the project's is hidden by it. */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
