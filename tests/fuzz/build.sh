#!/bin/sh
# Build the libFuzzer targets with clang, instrumenting the library sources they exercise
# (coverage-guided fuzzing needs the code under test compiled with -fsanitize=fuzzer-no-link,
# which the CMake build of holdfast_core does not do). Usage:
#	tests/fuzz/build.sh [outdir]        (default: build-fuzz)
# then for example:
#	build-fuzz/fuzz_login -max_total_time=300 build-fuzz/corpus-login
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
mkdir -p "$out"
cc=${CC:-clang}
flags="-std=gnu11 -D_GNU_SOURCE -g -O1 -I$root -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

$cc $flags -o "$out/fuzz_pdu" "$root/tests/fuzz/fuzz_pdu.c" \
	"$root/target/iscsi_pdu.c" "$root/target/iscsi_text.c" "$root/lib/crc32c.c"
$cc $flags -o "$out/fuzz_login" "$root/tests/fuzz/fuzz_login.c" \
	"$root/target/iscsi_login.c" "$root/target/iscsi_text.c" "$root/target/iscsi_chap.c" \
	"$root/target/iscsi_pdu.c" "$root/lib/log.c" -lmbedcrypto
$cc $flags -o "$out/fuzz_agent_proto" "$root/tests/fuzz/fuzz_agent_proto.c" \
	"$root/csv-coord/agent_proto.c"
echo "built $out/fuzz_pdu $out/fuzz_login $out/fuzz_agent_proto"
