package units

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containers/podman/v5/pkg/systemd/parser"
	"github.com/containers/podman/v5/pkg/systemd/quadlet"
)

// Quadlet is where a definition finds the Quadlet units it names
// (Network=web.network, Volume=data.volume:/data, Image=app.image,
// Requires=db.container), as Quadlet finds them: the .network, .volume,
// .image, .build, .artifact, .pod and .container files of its
// directories.
type Quadlet struct {
	// Dirs are Quadlet's directories, in order: a file in an earlier
	// one hides a file of the same name in a later one.
	Dirs []string
	// Missing says that Podman here has no Quadlet (before Podman 4.4):
	// nothing turns a .network or .volume file into the network or
	// volume, so a definition that names one is refused, saying what to
	// do instead.
	Missing bool

	once  sync.Once
	units []*parser.UnitFile
}

// SystemQuadlet is the Quadlet of this machine: its directories for the
// system's units, or with user for the calling user's, and whether it is
// installed.
func SystemQuadlet(user bool) *Quadlet {
	q := &Quadlet{Dirs: quadlet.GetUnitDirs(user), Missing: true}
	for _, p := range []string{
		"/usr/libexec/podman/quadlet",
		"/usr/lib/systemd/system-generators/podman-system-generator",
		"/usr/lib/systemd/user-generators/podman-user-generator",
	} {
		if _, err := os.Stat(p); err == nil {
			q.Missing = false
		}
	}
	return q
}

// load reads the Quadlet files of q's directories once; a file Quadlet
// cannot read is left out, as Quadlet leaves it out.
func (q *Quadlet) load() []*parser.UnitFile {
	if q == nil {
		return nil
	}
	q.once.Do(func() {
		seen := map[string]bool{}
		for _, dir := range q.Dirs {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				name := e.Name()
				if seen[name] || !quadlet.IsExtSupported(name) {
					continue
				}
				f, err := parser.ParseUnitFile(filepath.Join(dir, name))
				if err != nil {
					continue
				}
				seen[name] = true
				q.units = append(q.units, f)
			}
		}
		// As Quadlet orders them: what others name first.
		slices.SortStableFunc(q.units, func(a, b *parser.UnitFile) int {
			return quadlet.SupportedExtensions[filepath.Ext(a.Filename)] - quadlet.SupportedExtensions[filepath.Ext(b.Filename)]
		})
	})
	return q.units
}

// infoMap is Quadlet's table of units for converting self: each unit's
// service and resource names, as Quadlet's generator fills it in before
// it converts the .container files.
func (q *Quadlet) infoMap(self *parser.UnitFile, user bool) map[string]*quadlet.UnitInfo {
	m := map[string]*quadlet.UnitInfo{}
	var others []*parser.UnitFile
	if q != nil && !q.Missing {
		others = q.load()
	}
	for _, u := range others {
		info := &quadlet.UnitInfo{}
		info.ServiceName, _ = quadlet.GetUnitServiceName(u)
		switch filepath.Ext(u.Filename) {
		case ".container":
			info.ResourceName = quadlet.GetContainerResourceName(u)
		case ".build":
			info.ResourceName = quadlet.GetBuiltImageName(u)
		case ".artifact":
			info.ServiceName = quadlet.GetArtifactServiceName(u)
		case ".pod":
			info.ResourceName = quadlet.GetPodResourceName(u)
			info.ContainersToStart = []string{}
		}
		m[u.Filename] = info
	}
	// The resource names of networks, volumes and images come out of
	// their conversion.
	for _, u := range others {
		var err error
		switch filepath.Ext(u.Filename) {
		case ".network":
			_, _, err = quadlet.ConvertNetwork(u.Dup(), m, user)
		case ".volume":
			_, _, err = quadlet.ConvertVolume(u.Dup(), m, user)
		case ".image":
			_, err = quadlet.ConvertImage(u.Dup(), m, user)
		case ".artifact":
			_, err = quadlet.ConvertArtifact(u.Dup(), m, user)
		}
		_ = err // the unit fails on its own; naming it fails below
	}
	m[self.Filename] = &quadlet.UnitInfo{
		ServiceName:  quadlet.GetContainerServiceName(self),
		ResourceName: quadlet.GetContainerResourceName(self),
	}
	return m
}

// Convert runs Quadlet's own conversion of a .container file, self, into
// the service unit Quadlet's generator would write for it, finding the
// units it names in q, for the system's units or with user the user's.
func (q *Quadlet) Convert(self *parser.UnitFile, user bool) (*parser.UnitFile, error) {
	service, _, err := quadlet.ConvertContainer(self, q.infoMap(self, user), user)
	if err != nil && q != nil && q.Missing {
		// Did it fail for want of Quadlet units?
		if _, _, err2 := quadlet.ConvertContainer(self, (&Quadlet{Dirs: q.Dirs}).infoMap(self, user), user); err2 == nil {
			return nil, fmt.Errorf("%v: Podman here has no Quadlet (Podman 4.4 and later have it) to make what that file describes: create the network, volume or image yourself (podman network create NAME, podman volume create NAME) and name it, e.g. Network=NAME", err)
		}
	}
	return service, err
}

// quadletPrefix checks and removes what Quadlet's command line starts with
// for every container, and lazypod does itself: "podman run", --replace
// and --rm after --name NAME, and --cgroups=split unless CgroupsMode= sets
// a mode. The result starts with --name NAME.
func quadletPrefix(args []string, cgroupsMode bool) ([]string, error) {
	if len(args) < 6 || args[1] != "run" || args[2] != "--name" || args[4] != "--replace" || args[5] != "--rm" {
		return nil, fmt.Errorf("quadlet's command line %q does not start with podman run --name NAME --replace --rm", args)
	}
	out := slices.Concat(args[2:4], args[6:])
	i := 2
	for i+1 < len(out) && (out[i] == "--log-driver" || out[i] == "--log-opt") {
		i += 2
	}
	if !cgroupsMode && i < len(out) && out[i] == "--cgroups=split" {
		out = slices.Delete(out, i, i+1)
	}
	return out, nil
}

// cmdline writes words as Quadlet writes ExecStart=: quoted and escaped
// where systemd would split or unescape them, with specifiers (%i) and
// environment references ($VAR, ${VAR}) left for systemd to expand.
// Unlike Quadlet, it quotes a lone ";", which systemd would take for the
// end of the command.
func cmdline(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w == ";" {
			out[i] = `";"`
			continue
		}
		f := parser.NewUnitFile()
		f.AddCmdline("Service", "ExecStart", []string{w})
		out[i], _ = f.LookupLastRaw("Service", "ExecStart")
	}
	return strings.Join(out, " ")
}

// SplitCommand splits a command line as Quadlet splits Exec= and
// systemd ExecStart=: quotes group, C escapes are unescaped; specifiers
// and environment references are left as they are.
func SplitCommand(s string) ([]string, error) {
	f := parser.NewUnitFile()
	f.Add("Service", "ExecStart", s)
	words, _, err := f.LookupLastArgs("Service", "ExecStart")
	return words, err
}

// entries returns the Key=Value lines of group in f, in order.
func entries(f *parser.UnitFile, group string) []Entry {
	s, err := f.ToString()
	if err != nil {
		return nil
	}
	var out []Entry
	in := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "["):
			in = line == "["+group+"]"
		case !in || line == "" || line[0] == '#' || line[0] == ';':
		default:
			k, v, _ := strings.Cut(line, "=")
			out = append(out, Entry{Key: k, Value: v})
		}
	}
	return out
}
