# bash completion for microvm(1), installed as bash-completion/completions/microvm.
# The flags are those of `microvm --help`; tests/docs/check-docs compares the two lists.

_microvm()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=""
	local flags="--config --kernel --initrd --cmdline --mem --cpus --disk --net --io-engine
		--cmdline-devices --host-info --no-host-quirks --no-seccomp --run --timeout --stats
		--user --api-sock --restore --verify-memory --paused --record-working-set
		--no-working-set --jail --netns --cgroup --shutdown -q --quiet -v --verbose -h --help -V --version"

	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# "--flag=VALUE": bash splits the word at '=' (COMP_WORDBREAKS): the flag is one or two
	# words back.
	local eq=""
	if [[ $cur == = ]]; then
		cur="" eq=1
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]} eq=1
	fi
	# --stats takes a value only after '=' (--stats=json); "--stats X" is the switch, then X.
	if [[ $prev == --stats && $eq ]]; then
		mapfile -t COMPREPLY < <(compgen -W "text json off" -- "$cur")
		return
	fi

	case $prev in
	--config | --kernel | --initrd | --run | --api-sock | --netns | --shutdown)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return ;;
	--disk)
		# PATH[,OPTION]...: file names until the first ',', then the options.
		if [[ $cur == *,* ]]; then
			local opts="ro direct id= overlay overlay= bw= iops=" o out=()
			for o in $(compgen -W "$opts" -- "${cur##*,}"); do   # no spaces in these
				out+=("${cur%,*},$o")
			done
			COMPREPLY=("${out[@]}")
			compopt -o nospace 2>/dev/null
		else
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		fi
		return ;;
	--restore | --jail)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return ;;
	--net)
		compopt -o nospace 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -W "tap=" -- "$cur")
		return ;;
	--io-engine)
		mapfile -t COMPREPLY < <(compgen -W "auto uring sync" -- "$cur")
		return ;;
	--user)
		mapfile -t COMPREPLY < <(compgen -u -- "$cur")
		return ;;
	--cmdline | --mem | --cpus | --timeout | --record-working-set | --cgroup)
		return ;;   # a free-form value
	esac

	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
	fi
}
complete -F _microvm microvm
