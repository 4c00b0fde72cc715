# Warnings and sanitizers are INTERFACE targets linked where needed, never global flags.
add_library(transfer_warnings INTERFACE)
target_compile_options(transfer_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual)

option(TRANSFER_SANITIZE "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
add_library(transfer_sanitizers INTERFACE)
if(TRANSFER_SANITIZE)
  target_compile_options(transfer_sanitizers INTERFACE -fsanitize=address,undefined
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(transfer_sanitizers INTERFACE -fsanitize=address,undefined)
endif()

option(TRANSFER_TSAN "Build with ThreadSanitizer" OFF)
if(TRANSFER_TSAN)
  if(TRANSFER_SANITIZE)
    message(FATAL_ERROR "TRANSFER_TSAN and TRANSFER_SANITIZE cannot be combined")
  endif()
  target_compile_options(transfer_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(transfer_sanitizers INTERFACE -fsanitize=thread)
endif()

# Fuzz builds (clang): everything the fuzzers link is instrumented for coverage and checked by
# ASan + UBSan; the fuzzer executables add libFuzzer's main.
if(TRANSFER_BUILD_FUZZERS)
  target_compile_options(transfer_sanitizers INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(transfer_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
