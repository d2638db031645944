#!/bin/sh
# Regenerates ls-qpack's and ls-hpack's huff-tables.h (BUILD.md): no reachable copy of
# either (blobs 2265d47d / 8cf0110f) exists. Usage: regen-huff-tables.sh <ls-hpack git dir> <out dir>;
# writes <out dir>/ls-qpack/huff-tables.h and <out dir>/ls-hpack/huff-tables.h.
#  - struct encode_el + encode_table, struct decode_el + decode_tables, hdecs:
#    copied from ls-hpack ae2304a:src/lshpack.c (last present inline version;
#    identical to ls-qpack 9f35778:lsqpack.c). hdecs kept in its inline,
#    hand-edited form (header comment, {0,{0,0,0,}} for the 2 invalid entries).
#  - hencs: output of ls-hpack bin/gen-fast-enc-table.c (unchanged since 636ce33).
#  - hencs and hdecs are wrapped in #if LS_{Q,H}PACK_USE_LARGE_TABLES.
set -e
H=${1:?the ls-hpack git directory}
OUT=${2:?the output directory}
mkdir -p "$OUT/ls-qpack" "$OUT/ls-hpack"
T=$(mktemp -d)
git -C $H show ae2304a:src/lshpack.c > $T/src.c
git -C $H show 8905c024b6d052f083a3d11d0a169b3c2735c8a1:bin/gen-fast-enc-table.c > $T/gen-enc.c
gcc -O2 -o $T/gen-enc $T/gen-enc.c && $T/gen-enc > $T/hencs.txt
sed -n 124,389p  $T/src.c > $T/enc.txt          # struct encode_el .. encode_table };
sed -n 392,5265p $T/src.c > $T/dec.txt          # struct decode_el .. decode_tables };
awk 'NR>=6540' $T/src.c | awk '{print} /^};/{exit}' > $T/hdecs.txt
for p in qpack:LS_QPACK_USE_LARGE_TABLES hpack:LS_HPACK_USE_LARGE_TABLES; do
    lib=${p%%:*}; M=${p#*:}
    { cat $T/enc.txt; printf '\n\n#if %s\n' $M; cat $T/hencs.txt; printf '#endif\n\n\n'
      cat $T/dec.txt; printf '\n\n#if %s\n' $M; cat $T/hdecs.txt; printf '#endif\n'; } > $OUT/ls-$lib/huff-tables.h
done
rm -rf $T
sha256sum $OUT/ls-qpack/huff-tables.h $OUT/ls-hpack/huff-tables.h
