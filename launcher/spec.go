package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"

	"github.com/lazypod/lazypod/internal/spec"
)

// specVersion is part of every hash: bump it when the way the launcher
// creates containers changes, so existing containers are recreated.
const specVersion = 2

// ContainerSpec returns the container c describes, labels included: what
// the launcher asks the Runtime to create.
func (c *Config) ContainerSpec() ContainerSpec {
	s := ContainerSpec{
		Name:    c.container(),
		Image:   c.Image,
		Options: c.Options,
		Command: c.Command,
		Env:     c.Env,
		Memory:  c.Memory,
		CPUs:    c.CPUs,
		User:    c.User,
		Network: c.Network,
		Labels:  map[string]string{LabelService: c.Name},
	}
	maps.Copy(s.Labels, c.Labels)
	s.Labels[LabelService] = c.Name
	seen := make(map[ContainerPort]bool)
	for _, p := range c.Ports {
		cp := ContainerPort{Port: p.Port, Proto: p.proto()}
		if !seen[cp] {
			seen[cp] = true
			s.Ports = append(s.Ports, cp)
		}
	}
	s.Mounts = append(s.Mounts, c.Volumes...)
	if c.ready().Kind == spec.ProbeNotify {
		s.Mounts = append(s.Mounts, spec.Volume{Source: c.notifySocketPath(), Target: NotifyPath})
		s.Env = append(append([]string(nil), s.Env...), "NOTIFY_SOCKET="+NotifyPath)
	}
	s.Labels[LabelHash] = specHash(s)
	return s
}

// specHash is the sha256 of the canonical JSON of every setting in s, its
// hash label excluded. encoding/json writes struct fields in order and map
// keys sorted, so equal settings give equal hashes.
func specHash(s ContainerSpec) string {
	labels := maps.Clone(s.Labels)
	delete(labels, LabelHash)
	s.Labels = labels
	b, err := json.Marshal(struct {
		Version int
		Spec    ContainerSpec
	}{specVersion, s})
	if err != nil {
		panic("launcher: encoding container spec: " + err.Error()) // plain data: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
