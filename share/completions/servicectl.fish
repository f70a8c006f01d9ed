# fish completion for servicectl (`servicectl completions fish`).
# Install: copy to ~/.config/fish/completions/servicectl.fish, or
#   servicectl completions fish | source
# Candidates come from `servicectl __complete -- WORD…`: commands and options from the
# binary itself, service names from the playpen at hand (no config is evaluated).

function __servicectl_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l out ($words[1] __complete -- $words[2..-1] 2>/dev/null)
    switch "$out[1]"
        case __dirs__
            __fish_complete_directories (commandline -ct)
        case __files__
            __fish_complete_path (commandline -ct)
        case '*'
            printf '%s\n' $out
    end
end

complete -c servicectl -f -a '(__servicectl_complete)'
