package spec

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Volume is a mount, as podman run -v SRC:DST[:OPTS] takes it.
type Volume struct {
	// Source is an absolute host path (a bind mount) or the name of a
	// named volume.
	Source string
	// Target is the absolute path inside the container.
	Target string
	// Options are mount options such as "ro" or "z".
	Options []string `json:",omitempty"`
}

// IsBind reports whether the volume is a bind mount of a host path.
func (v Volume) IsBind() bool { return path.IsAbs(v.Source) }

// String returns the volume as ParseVolume reads it.
func (v Volume) String() string {
	s := v.Source + ":" + v.Target
	if len(v.Options) > 0 {
		s += ":" + strings.Join(v.Options, ",")
	}
	return s
}

// ParseVolume parses SRC:DST[:OPTS]: DST absolute, SRC an absolute host
// path or a volume name, OPTS comma-separated with none empty.
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
		return Volume{}, errors.New("want SRC:DST[:OPTS] with an absolute DST, e.g. /srv/data:/data:ro or data:/data")
	}
	v := Volume{Source: parts[0], Target: parts[1]}
	if !v.IsBind() && !nameRE.MatchString(v.Source) {
		return Volume{}, fmt.Errorf("%q is neither an absolute host path nor a volume name: write the absolute path, e.g. /srv/data:/data", v.Source)
	}
	if len(parts) == 3 {
		for o := range strings.SplitSeq(parts[2], ",") {
			if o == "" {
				return Volume{}, errors.New("empty mount option: separate options with single commas, e.g. ro,z")
			}
			v.Options = append(v.Options, o)
		}
	}
	return v, nil
}

// CheckKeyValue checks an environment entry or a label: KEY=VALUE with a
// key and no white space in the key.
func CheckKeyValue(s string) error {
	key, _, ok := strings.Cut(s, "=")
	if !ok || key == "" || strings.ContainsAny(key, " \t\n\r") {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	return nil
}

// CheckLabel checks a label: KEY=VALUE, not under lazypod's own prefix.
func CheckLabel(s string) error {
	if err := CheckKeyValue(s); err != nil {
		return err
	}
	if strings.HasPrefix(s, LabelPrefix) {
		return fmt.Errorf("label %q: the %s prefix is lazypod's own: use another prefix", s, LabelPrefix)
	}
	return nil
}

// LabelPrefix starts the labels lazypod puts on its containers.
const LabelPrefix = "io.lazypod."

// CheckUser checks a user to run as, as podman run --user: USER[:GROUP],
// each a name or a number, without white space.
func CheckUser(s string) error {
	user, group, hasGroup := strings.Cut(s, ":")
	if user == "" || (hasGroup && (group == "" || strings.Contains(group, ":"))) || strings.ContainsAny(s, " \t\n") {
		return errors.New("want USER[:GROUP], each a name or a number without spaces, e.g. 1000:100")
	}
	return nil
}

// CheckNetwork checks a network mode or name, as podman run --network.
func CheckNetwork(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\n") {
		return errors.New("want one Podman network mode, e.g. bridge, host or a network's name")
	}
	return nil
}

// CheckAbsPath checks a path of a file lazypod serve opens.
func CheckAbsPath(s string) error {
	if !path.IsAbs(s) {
		return errors.New("not an absolute path: write it from /, e.g. /etc/app/app.env")
	}
	return nil
}

// CheckMetricsFile checks a metrics file's path: absolute, and named
// *.prom, the files node_exporter's textfile collector reads.
func CheckMetricsFile(s string) error {
	if err := CheckAbsPath(s); err != nil {
		return errors.New("not an absolute path: write it from /, e.g. /var/lib/prometheus/node-exporter/lazypod-web.prom")
	}
	if !strings.HasSuffix(s, ".prom") || path.Base(s) == ".prom" {
		return errors.New("node_exporter's textfile collector reads only files named *.prom: name it so, e.g. lazypod-web.prom")
	}
	return nil
}
