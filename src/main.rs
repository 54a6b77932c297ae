//! `ordergrid`: the command line is [`ordergrid::cli`].

#[global_allocator]
static ALLOCATOR: allocator::Split = allocator::Split;

fn main() -> std::process::ExitCode {
    ordergrid::cli::main(allocator::on_idle)
}

mod allocator {
    //! Small blocks from mimalloc, large ones from the C library.
    //!
    //! Under load the C library's allocator was about 30% of the emulator's CPU and 24% of the
    //! handler's (`bench/profiles`), nearly all of it in small blocks: requests, headers, JSON
    //! values. mimalloc serves those from per-thread pages. Blocks of [`LARGE`] and more (request
    //! bodies of up to 1 MiB, read buffers) stay with the C library, which maps each one on its
    //! own and unmaps it when freed (glibc with the fixed mmap threshold `cli` sets, musl by its
    //! design): with mimalloc serving them too, the bursts of `tests/emulator/memory.rs` peaked
    //! at 330 to 389 MiB and left 182 to 334 MiB behind, against 207 to 216 and 47 to 49 with
    //! the split (BENCHMARKS.md, issue 15), because freed pages waited for their thread to
    //! reuse them.
    //!
    //! mimalloc gives freed small pages back when a thread collects; a tokio worker collects
    //! when it runs out of work, at most once per [`EVERY`], so an idle process shrinks within
    //! about a second.
    //!
    //! Invariant: a block is freed by the allocator that made it, which its size tells
    //! (`dealloc` gets the size it was allocated or last reallocated with); a reallocation
    //! across [`LARGE`] moves the block.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use mimalloc::MiMalloc;

    /// The size from which blocks come from the C library: glibc's default mmap threshold.
    const LARGE: usize = 128 * 1024;
    /// How often an idle worker at most collects. A busy worker runs out of work thousands of
    /// times a second, and a forced collect takes about 2 ms: at most every 100 ms it was 3% of
    /// the emulator's CPU under load, and the pages it gave back were faulted in again
    /// (BENCHMARKS.md, issue 15).
    const EVERY: Duration = Duration::from_secs(1);

    pub struct Split;

    fn large(size: usize) -> bool {
        size >= LARGE
    }

    // SAFETY: every call is passed to one of two allocators that uphold GlobalAlloc's contract,
    // chosen by the block's size, which is the same at allocation and at deallocation.
    unsafe impl GlobalAlloc for Split {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's guarantees for `layout` hold for either allocator.
            unsafe {
                if large(layout.size()) {
                    System.alloc(layout)
                } else {
                    MiMalloc.alloc(layout)
                }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as in `alloc`.
            unsafe {
                if large(layout.size()) {
                    System.alloc_zeroed(layout)
                } else {
                    MiMalloc.alloc_zeroed(layout)
                }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was allocated with `layout`'s size, so by the same allocator.
            unsafe {
                if large(layout.size()) {
                    System.dealloc(ptr, layout)
                } else {
                    MiMalloc.dealloc(ptr, layout)
                }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: within one allocator, its own realloc; across, a new block of the same
            // alignment, the common prefix copied, the old block freed by its allocator.
            unsafe {
                match (large(layout.size()), large(new_size)) {
                    (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                    (true, true) => System.realloc(ptr, layout, new_size),
                    _ => {
                        let new_layout =
                            Layout::from_size_align_unchecked(new_size, layout.align());
                        let new = self.alloc(new_layout);
                        if !new.is_null() {
                            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                            self.dealloc(ptr, layout);
                        }
                        new
                    }
                }
            }
        }
    }

    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    /// Called by each runtime worker when it runs out of work.
    pub fn on_idle() {
        let now = Instant::now();
        LAST.with(|last| {
            if last.get().is_some_and(|at| now.duration_since(at) < EVERY) {
                return;
            }
            last.set(Some(now));
            // SAFETY: mi_collect takes no pointers; mimalloc allows it on any thread at any time.
            unsafe { libmimalloc_sys::mi_collect(true) };
        });
    }

    #[cfg(test)]
    mod tests {
        use super::LARGE;

        /// Growing and shrinking across [`LARGE`] moves a block between the two allocators; its
        /// contents survive each move, and each block is freed by its own allocator (glibc
        /// aborts the process on a block it did not make).
        #[test]
        fn blocks_keep_their_contents_across_the_threshold() {
            let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
            let mut block = pattern(LARGE - 1);
            block.extend(pattern(3 * LARGE).iter().skip(LARGE - 1));
            assert_eq!(block, pattern(3 * LARGE), "grown from small to large");
            block.truncate(100);
            block.shrink_to_fit();
            assert_eq!(block, pattern(100), "shrunk from large to small");
            let zeroed = vec![0u8; 2 * LARGE];
            assert!(zeroed.iter().all(|&b| b == 0), "a large zeroed block");
        }
    }
}
