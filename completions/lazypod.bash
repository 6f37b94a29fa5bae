# bash completion for lazypod; make install puts it in
# $(PREFIX)/share/bash-completion/completions/lazypod.
#
# Commands and units' subcommands are listed here; each command's flags are read from its own
# --help, so they stay in step with the binary. Definition files (*.lazypod) complete for units.

_lazypod() {
	local cur prev words cword
	_init_completion || return

	if ((cword == 1)); then
		mapfile -t COMPREPLY < <(compgen -W "serve update status rollback units version help" -- "$cur")
		return
	fi
	local cmd=${words[1]} sub=()
	if [[ $cmd == units ]]; then
		if ((cword == 2)); then
			mapfile -t COMPREPLY < <(compgen -W "generate install remove" -- "$cur")
			return
		fi
		sub=("${words[2]}")
	fi
	case $prev in
	--output | --state-dir | --bin | --authfile | --env-file)
		_filedir
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		local flags
		# Flags as Go's flag package lists them ("  -idle-timeout DURATION") or as a
		# usage line shows them ("[--output DIR]"), offered in their -- form.
		flags=$("${words[0]}" "$cmd" "${sub[@]}" --help 2>&1 |
			grep -oE -- '(^ +|\[)--?[a-z][a-z-]*' | sed -E 's/^( +|\[)-+/--/' | sort -u)
		mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
		return
	fi
	case $cmd/${sub[0]:-} in
	units/generate | units/install) _filedir lazypod ;;
	esac
}
complete -F _lazypod lazypod
