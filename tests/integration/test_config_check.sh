#!/bin/sh
# holdfastd -n on good and broken configuration files: exit 0 and "configuration OK" for a
# good one; exit 1 and "file:line: what" for each broken one. Usage: test_config_check.sh BUILD_DIR
set -u

build=${1:?usage: $0 BUILD_DIR}
hfd="$build/holdfastd"
[ -x "$hfd" ] || { echo "no $hfd"; exit 1; }
dir=$(mktemp -d /tmp/hf-config-check.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
failures=0

good_head='portals = ( { name = "lo"; address = "127.0.0.1"; port = 3260; tpgt = 1; } );
backstores = ( { name = "d0"; type = "file"; path = "d0.img"; size = "1G"; } );'
good_target='targets = ( { iqn = "iqn.2026-11.org.holdfast:t"; luns = ( { id = 0; backstore = "d0"; } ); } );'

# check NAME EXPECTED_RC EXPECTED_TEXT: run holdfastd -n on $dir/NAME.conf.
check() {
	out=$("$hfd" -n -c "$dir/$1.conf" 2>&1)
	rc=$?
	if [ "$rc" -ne "$2" ]; then
		echo "FAIL $1: exit $rc, expected $2: $out"
		failures=$((failures + 1))
		return
	fi
	case "$out" in
	*"$3"*) echo "ok   $1: $out" ;;
	*)
		echo "FAIL $1: expected '$3' in: $out"
		failures=$((failures + 1))
		;;
	esac
}

printf '%s\n%s\n' "$good_head" "$good_target" >"$dir/good.conf"
check good 0 "configuration OK"

printf '%s\n%s\nworker = 4;\n' "$good_head" "$good_target" >"$dir/typo.conf"
check typo 1 "$dir/typo.conf:4: unknown key 'worker'"

printf '%s\n%s\n\nworkers = ;\n' "$good_head" "$good_target" >"$dir/syntax.conf"
check syntax 1 "$dir/syntax.conf:5: syntax error"

printf '%s\ntargets = ( { iqn = "iqn.2026-11.org.holdfast:t";\n  portals = [ "eth0" ];\n  luns = ( { id = 0; backstore = "d0"; } ); } );\n' \
	"$good_head" >"$dir/portal.conf"
check portal 1 "$dir/portal.conf:4: target 'iqn.2026-11.org.holdfast:t': portal 'eth0' is not defined"

printf '%s\ntargets = ( { iqn = "IQN.bad"; luns = ( { id = 0; backstore = "d0"; } ); } );\n' \
	"$good_head" >"$dir/iqn.conf"
check iqn 1 "$dir/iqn.conf:3: target 'IQN.bad': bad iSCSI name"

printf 'portals = ( { name = "lo"; address = "127.0.0.1"; } );\nbackstores = ( { name = "d0"; type = "memory";\n  size = "1000"; block_size = 4096; } );\n%s\n' \
	"$good_target" >"$dir/size.conf"
check size 1 "$dir/size.conf:3: backstore 'd0': size 1000 is not a multiple of block_size 4096"

printf '%s\ntargets = ( { iqn = "iqn.2026-11.org.holdfast:t"; luns = ( { id = 0; backstore = "d0"; } );\n  chap = ( { user = "u"; secret = "short"; } ); } );\n' \
	"$good_head" >"$dir/chap.conf"
check chap 1 "$dir/chap.conf:4:"

check missing 1 "$dir/missing.conf:0:"

# With no -c the embedded default is checked.
out=$("$hfd" -n 2>&1)
if [ $? -eq 0 ] && [ "$out" = "configuration OK" ]; then
	echo "ok   default: $out"
else
	echo "FAIL default: $out"
	failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all config checks passed"
