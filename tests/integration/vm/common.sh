# shellcheck shell=bash
# Shared helpers for the kernel-NBD VM harness (sourced, not executed).

# br_vm_pick_kver: print the kernel version to boot.  A version qualifies when
# both /boot/vmlinuz-V and /lib/modules/V/modules.dep exist.  Prefer the
# running kernel if it qualifies (it usually does not: hosts and containers
# often run a different kernel from the installed linux-image-amd64), else
# the highest installed version.
br_vm_pick_kver() {
    local v best=""
    v=$(uname -r)
    if [[ -r /boot/vmlinuz-$v && -r /lib/modules/$v/modules.dep ]]; then
        echo "$v"; return 0
    fi
    for f in /boot/vmlinuz-*; do
        [[ -e $f ]] || continue
        v=${f#/boot/vmlinuz-}
        [[ -r /lib/modules/$v/modules.dep ]] || continue
        best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n1)
    done
    [[ -n $best ]] || return 1
    echo "$best"
}
