#!/usr/bin/env bash
# The man pages (docs/man/*.pod, generated into $BUILDDIR/docs/man at build
# time) exist, render cleanly and document what the programs really have.
# Nothing is listed here by hand: every name checked is read from the
# programs' own output or from their sources.
#
#  (a) every docs/man/NAME.pod has exactly one generated page
#      $BUILDDIR/docs/man/NAME.SECTION, not older than its source, that
#      `man -l` (and groff, with every warning on) renders without a
#      warning, and whose NAME section names it;
#  (b) every long option that `blockrelayd --help` and `blockrelay --help`
#      print, every long option of the `struct option` arrays in
#      src/blockrelayd.c, src/cli.c, src/cli-ops.c, src/cli-role.c and
#      src/cli-events.c and every short option of their
#      getopt_long option strings is in blockrelayd(8), resp. blockrelay(8);
#  (c) every plugin parameter (the KEY= lines that
#      `nbdkit nbdkit-blockrelay-plugin.so --help` prints, the keys br_config
#      compares against and the KEY= lines of br_config_help in
#      plugin/blockrelay.c) and every -D blockrelay.FLAG is in
#      nbdkit-blockrelay-plugin(1);
#  (d) every key of every `struct schema` initializer in src/config.c has
#      its own entry ("KEY: type ...") in blockrelay.yaml(5), the entries
#      of one schema's keys in one section of the page, and every word of
#      the enumeration arrays (*_names[]) appears there;
#  (e) every subcommand of the "commands:" list of `blockrelay --help` has
#      an entry (an =item of its own) in blockrelay(8);
#  (f) every environment variable the code reads (getenv in src/ and
#      plugin/, macros resolved) is in blockrelayd(8) and in
#      nbdkit-blockrelay-plugin(1);
#  (g) every reference NAME(N) to a page of docs/man, in a page or as
#      man:NAME(N) in a systemd unit of deploy/systemd, names the section
#      that page is generated in.
#
# Every miss is collected and printed before the test fails.
. "$(dirname "$0")/lib.sh"

need perl
command -v man >/dev/null 2>&1 || command -v groff >/dev/null 2>&1 ||
  skip "neither man nor groff is installed"
MANSRC=$SRCDIR/docs/man
MANDIR=$BUILDDIR/docs/man
[ -d "$MANDIR" ] || fail "$MANDIR does not exist (is the build complete?)"
[ -x "$BLOCKRELAY" ] || fail "$BLOCKRELAY is not built"
[ -x "$BLOCKRELAYD" ] || fail "$BLOCKRELAYD is not built"

# man and groff print a warning for a locale that does not exist.
if locale -a 2>/dev/null | grep -qix 'C.utf-\?8'; then
  export LC_ALL=C.UTF-8
else
  export LC_ALL=C
fi
unset MANPAGER PAGER MANOPT MAN_KEEP_FORMATTING

# Problems are collected in a file: miss may run in a subshell.
: > "$T/missing"
miss() { printf '%s\n' "$*" >> "$T/missing"; log "MISSING: $*"; }

# page NAME: the generated page of docs/man/NAME.pod ("" if none, or more
# than one).
page() {
  local f found=()
  for f in "$MANDIR/$1".[1-9]; do
    [ -f "$f" ] && found+=("$f")
  done
  if [ ${#found[@]} -eq 1 ]; then echo "${found[0]}"; fi
}

# render FILE WIDTH: the page as plain text, lines WIDTH wide, no
# hyphenation, with the typographic hyphens and minus signs of the UTF-8
# output turned back into "-" and no-break spaces into spaces; the
# renderer's stderr goes to $T/render.err.
render() {
  local file=$1 width=$2
  if command -v man >/dev/null 2>&1; then
    MANWIDTH=$width man --warnings=w --nh --nj -E UTF-8 -l "$file"
  else
    groff -k -man -Tutf8 -ww -rLL="${width}n" -rHY=0 -P-c "$file"
  fi 2>"$T/render.err" |
    perl -CS -pe 's/.\x08//g; s/\e\[[0-9;]*m//g; tr/\x{2010}\x{2011}\x{2212}\x{a0}/--- /'
}

# items FILE: the page's entries (its =item headings), one a line, as
# "SECTION<TAB>TEXT", from the index entries pod2man writes
# (.IX Header "SECTION", .IX Item "TEXT"; plain text, no formatting).
items() {
  perl -ne '
    if (/^\.IX\s+Header\s+"(.*)"\s*$/) { $h = $1; next; }
    print "$h\t$1\n" if /^\.IX\s+Item\s+"(.*)"\s*$/;' "$1"
}

# absent TEXT-FILE ITEMS-FILE MODE: the words on stdin (one a line) that
# the page lacks.  Every word must be in the rendered text, not inside a
# longer name (no letter, digit, "_" or "-" next to it).  Unless MODE is
# "word", it must also have an entry of its own, an item that
#   key     starts with "WORD:"            (=item B<key:> I<type>...)
#   item    starts with WORD and a space   (=item B<check-config> I<FILE>)
#   param   starts with WORD or "[WORD"    (=item B<key=>I<VALUE>)
#   option  starts with "-" and holds WORD (=item B<-c> I<F>, B<--config> I<F>)
# Prints "WORD<TAB>what is wrong".
absent() {
  perl -e '
    my ($textfile, $itemsfile, $mode) = @ARGV;
    open my $fh, "<", $textfile or die "$textfile: $!\n";
    my $text = do { local $/; <$fh> };
    open $fh, "<", $itemsfile or die "$itemsfile: $!\n";
    my @items = map { chomp; (split /\t/, $_, 2)[1] } <$fh>;
    while (my $w = <STDIN>) {
      chomp $w;
      next if $w eq "";
      my $q = quotemeta $w;
      my $before = $w =~ /^[\w-]/ ? qr/(?<![\w-])/ : qr//;
      my $after = $w =~ /\w$/ ? qr/(?![\w-])/ : qr//;
      if ($text !~ /$before$q$after/) {
        print "$w\tnot in the page\n";
        next;
      }
      my $re = $mode eq "key" ? qr/^$q:/
        : $mode eq "item" ? qr/^$q(?:\s|$)/
        : $mode eq "param" ? qr/^\[?$q$after/
        : $mode eq "option" ? qr/^(?=-).*?$before$q$after/
        : next;
      print "$w\tin the page, but no =item entry of its own ($mode)\n"
        unless grep { $_ =~ $re } @items;
    }' "$1" "$2" "$3"
}

# require PAGE-NAME MODE WHAT: every word on stdin must be in the page
# (see absent); WHAT says where the words came from.
require() {
  local name=$1 mode=$2 what=$3 w why words
  words=$(sort -u | grep . || true)
  [ -n "$words" ] || { miss "$name: nothing found to check ($what)"; return; }
  [ -f "$T/$name.txt" ] ||
    { miss "$name: no page to check $what against"; return; }
  log "$name: $(wc -l <<<"$words") from $what: $(tr '\n' ' ' <<<"$words")"
  while IFS=$'\t' read -r w why; do
    miss "$name: '$w' ($what): $why"
  done < <(absent "$T/$name.txt" "$T/$name.items" "$mode" <<<"$words")
}

# ---- (a) every POD source has a page that renders cleanly ----
n=0
for pod in "$MANSRC"/*.pod; do
  [ -e "$pod" ] || continue
  name=$(basename "$pod" .pod)
  n=$((n + 1))
  f=$(page "$name")
  if [ -z "$f" ]; then
    miss "$name: no single generated page $MANDIR/$name.[1-9] for $pod"
    continue
  fi
  [ -s "$f" ] || { miss "$name: $f is empty"; continue; }
  [ "$pod" -nt "$f" ] && miss "$name: $f is older than $pod (rebuild)"
  render "$f" 80 >/dev/null
  [ -s "$T/render.err" ] &&
    miss "$name: rendering $f warns: $(tr '\n' ' ' < "$T/render.err")"
  if command -v groff >/dev/null 2>&1; then
    groff -k -man -Tutf8 -ww -z "$f" 2>"$T/groff.err" ||
      miss "$name: groff fails on $f"
    [ -s "$T/groff.err" ] &&
      miss "$name: groff -ww warns: $(tr '\n' ' ' < "$T/groff.err")"
  fi
  # Wide lines: a name is never broken across two lines.
  render "$f" 10000 > "$T/$name.txt"
  [ -s "$T/$name.txt" ] || miss "$name: $f renders as nothing"
  items "$f" > "$T/$name.items"
  first=$(perl -ne '$n = 1, next if /^NAME$/; if ($n && /\S/) { print; exit }' \
    "$T/$name.txt")
  case "$first" in
    *" $name - "*) ;;
    *) miss "$name: its NAME section does not start with '$name - ': '$first'" ;;
  esac
done
[ $n -gt 0 ] || fail "no POD sources in $MANSRC"
log "$n pages generated and rendered"

# ---- (b) options of blockrelayd and blockrelay ----
# struct_options FILE: the names of every `struct option` array in FILE.
struct_options() {
  perl -0777 -ne '
    while (/struct\s+option\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};/gs) {
      my $body = $1;
      print "$1\n" while $body =~ /\{\s*"([^"]+)"/g;
    }' "$1"
}
# getopt_shorts FILE: the letters of every getopt_long option string.
getopt_shorts() {
  perl -0777 -ne '
    while (/getopt_long\s*\([^,]*,[^,]*,\s*"([^"]*)"/g) {
      (my $s = $1) =~ s/[:+-]//g;
      print "-$_\n" for split //, $s;
    }' "$1"
}
help_longs() { grep -oE -- '--[a-z][a-z0-9-]*' || true; }
help_shorts() { grep -oE -- '(^|[[:space:]])-[a-zA-Z],' | tr -d ' ,\t' || true; }

for prog in blockrelayd:src/blockrelayd.c blockrelay:src/cli.c \
            blockrelay:src/cli-ops.c blockrelay:src/cli-role.c \
            blockrelay:src/cli-events.c; do
  name=${prog%%:*} src=$SRCDIR/${prog#*:}
  help=$("$BUILDDIR/$name" --help) || fail "$name --help failed"
  [ -n "$(help_longs <<<"$help")" ] || fail "$name --help prints no long option"
  help_longs <<<"$help" | require "$name" option "$name --help"
  help_shorts <<<"$help" | require "$name" option "$name --help"
  [ -n "$(struct_options "$src")" ] || fail "no struct option array in $src"
  struct_options "$src" | sed 's/^/--/' |
    require "$name" option "struct option in ${src#"$SRCDIR"/}"
  getopt_shorts "$src" | require "$name" option "getopt_long in ${src#"$SRCDIR"/}"
done

# ---- (c) plugin parameters and debug flags ----
PLUGIN_SRC=$SRCDIR/plugin/blockrelay.c
src_params=$(perl -0777 -ne '
  print "$1=\n" while /strcmp\s*\(\s*key\s*,\s*"([^"]+)"\s*\)/g;
  if (/#define\s+br_config_help((?:[^\n]*\\\n)*[^\n]*)/) {
    my $h = $1;
    print "$1=\n" while $h =~ /"([a-z][a-z0-9_-]*)=/g;
  }' "$PLUGIN_SRC")
[ -n "$src_params" ] || fail "no parameters found in $PLUGIN_SRC"
require nbdkit-blockrelay-plugin param "br_config/br_config_help" <<<"$src_params"
src_flags=$(grep -oE 'blockrelay_debug_[a-z0-9_]+' "$PLUGIN_SRC" |
  sed 's/^blockrelay_debug_/-D blockrelay./; s/$/=1/')
[ -n "$src_flags" ] || fail "no debug flags found in $PLUGIN_SRC"
require nbdkit-blockrelay-plugin option "blockrelay_debug_* in plugin" <<<"$src_flags"
if command -v nbdkit >/dev/null 2>&1; then
  phelp=$(nbdkit "$PLUGIN" --help 2>"$T/nbdkit.err") ||
    { cat "$T/nbdkit.err" >&2; fail "nbdkit $PLUGIN --help failed"; }
  params=$(sed -n '/^plugin: /,$p' <<<"$phelp" |
    grep -oE '^[a-z][a-z0-9_-]*=' || true)
  [ -n "$params" ] || fail "nbdkit $PLUGIN --help lists no KEY= parameter"
  require nbdkit-blockrelay-plugin param "nbdkit --help" <<<"$params"
  grep -oE 'blockrelay\.[a-z0-9_]+=' <<<"$phelp" | sed 's/^/-D /' |
    require nbdkit-blockrelay-plugin option "nbdkit --help debug flags"
else
  log "nbdkit is not installed: plugin parameters checked from the source only"
fi

# ---- (d) topology keys and enumerations ----
CONFIG_SRC=$SRCDIR/src/config.c
# One line per schema: VARIABLE, its label and its keys, tab-separated.
schemas=$(perl -0777 -ne '
  while (/struct\s+schema\s+(\w+)\s*=\s*\{\s*"([^"]*)"\s*,\s*\{([^}]*)\}/g) {
    my ($var, $what, $b) = ($1, $2, $3);
    my @k = $b =~ /"([^"]+)"/g;
    print "$var\t$what\t@k\n";
  }' "$CONFIG_SRC")
[ "$(wc -l <<<"$schemas")" -ge 2 ] || fail "no struct schema found in $CONFIG_SRC"
cut -f3 <<<"$schemas" | tr ' ' '\n' |
  require blockrelay.yaml key "struct schema in src/config.c"
# The keys of one schema are documented together: one section of the page
# has an entry for each.
while IFS=$'\t' read -r var what ks; do
  [ -f "$T/blockrelay.yaml.items" ] || break
  read -ra keyv <<<"$ks"
  problem=$(perl -e '
    my ($file, @keys) = @ARGV;
    my %sect;
    open my $fh, "<", $file or die "$file: $!\n";
    while (<$fh>) {
      chomp;
      my ($h, $item) = split /\t/, $_, 2;
      $sect{$h}{$1} = 1 if $item =~ /^([^:\s]+):/;
    }
    my ($best, @lack);
    for my $h (sort keys %sect) {
      my @l = grep { !$sect{$h}{$_} } @keys;
      ($best, @lack) = ($h, @l) if !defined $best || @l < @lack;
    }
    print defined $best ? "closest is $best, which lacks @lack" : "no entries"
      if !defined $best || @lack;' "$T/blockrelay.yaml.items" "${keyv[@]}")
  [ -z "$problem" ] ||
    miss "blockrelay.yaml: no section has an entry for each key of $var ($what: $ks); $problem"
done <<<"$schemas"
words=$(perl -0777 -ne '
  while (/\b(\w+_names)\s*\[\s*\]\s*=\s*\{([^}]*)\}/g) {
    my $b = $2;
    print "$1\n" while $b =~ /"([^"]+)"/g;
  }' "$CONFIG_SRC")
[ -n "$words" ] || fail "no *_names[] enumerations found in $CONFIG_SRC"
require blockrelay.yaml word "*_names[] in src/config.c" <<<"$words"

# ---- (e) subcommands of blockrelay ----
subs=$("$BLOCKRELAY" --help |
  awk '/^commands:/ { on = 1; next } on && /^[[:space:]]*$/ { exit }
       on { print $1 }')
[ -n "$subs" ] || fail "blockrelay --help lists no commands"
require blockrelay item "blockrelay --help commands" <<<"$subs"

# ---- (f) environment variables ----
envs=$(cat "$SRCDIR"/src/*.[ch] "$SRCDIR"/plugin/*.[ch] | perl -0777 -ne '
  my %def;
  $def{$1} = $2 while /^#\s*define\s+(\w+)\s+"([^"]*)"/mg;
  while (/\bgetenv\s*\(\s*([^)]*?)\s*\)/g) {
    my $arg = $1;
    next if $arg =~ /^\w+$/ && !exists $def{$arg};   # a variable: not ours
    $arg =~ s/\b([A-Z_][A-Z0-9_]*)\b/exists $def{$1} ? "\"$def{$1}\"" : $1/ge;
    my $v = join "", $arg =~ /"([^"]*)"/g;
    print "$v\n" if $v ne "";
  }')
[ -n "$envs" ] || fail "no getenv found in src/ and plugin/"
require blockrelayd item "getenv in src/, plugin/" <<<"$envs"
require nbdkit-blockrelay-plugin item "getenv in src/, plugin/" <<<"$envs"

# ---- (g) references between the pages ----
for txt in "$T"/*.txt; do
  name=$(basename "$txt" .txt)
  while read -r ref; do
    target=${ref%(*} sect=${ref#*(}
    sect=${sect%)}
    [ -e "$MANSRC/$target.pod" ] || continue
    [ -f "$MANDIR/$target.$sect" ] && continue
    other=$(page "$target")
    miss "$name: refers to $ref, but $target is generated as ${other:+$(basename "$other")}${other:-no page}"
  done < <(grep -oE '[a-z][a-z0-9.-]*\([1-9]\)' "$txt" | sort -u)
done

# ... and from the systemd units' Documentation= lines.
for unit in "$SRCDIR"/deploy/systemd/*; do
  [ -f "$unit" ] || continue
  while read -r ref; do
    ref=${ref#man:} target=${ref%(*} sect=${ref#*(}
    sect=${sect%)}
    [ -e "$MANSRC/$target.pod" ] || continue
    [ -f "$MANDIR/$target.$sect" ] && continue
    other=$(page "$target")
    miss "${unit#"$SRCDIR"/}: refers to man:$ref, but $target is generated as ${other:+$(basename "$other")}${other:-no page}"
  done < <(grep -oE 'man:[a-z][a-z0-9.-]*\([1-9]\)' "$unit" | sort -u)
done

if [ -s "$T/missing" ]; then
  log "$(wc -l < "$T/missing") problems:"
  sed 's/^/  /' "$T/missing" >&2
  fail "the man pages are incomplete (sources: $MANSRC/*.pod)"
fi
log "ok: options, parameters, subcommands, topology keys, enumerations and environment variables are documented"
