# bash completion for servicectl (`servicectl completions bash`).
# Install: copy to /usr/share/bash-completion/completions/servicectl, or
#   source <(servicectl completions bash)
# Candidates come from `servicectl __complete -- WORD…`: commands and options from the
# binary itself, service names from the playpen at hand (no config is evaluated).

_servicectl() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local IFS=$'\n'
    local -a out
    out=($("${COMP_WORDS[0]}" __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)) || return 0
    case ${out[0]-} in
        __dirs__) COMPREPLY=($(compgen -d -- "$cur")) ;;
        __files__) COMPREPLY=($(compgen -f -- "$cur")) ;;
        *) COMPREPLY=("${out[@]}") ;;
    esac
    return 0
}
complete -o bashdefault -o default -F _servicectl servicectl
