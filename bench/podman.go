package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// podman talks to one Podman API service, the way a person would by hand:
// plain REST calls over its unix socket, or the podman command line.
type podman struct {
	url    string // unix:///PATH
	client *http.Client
}

func newPodman(url string) (*podman, error) {
	path, ok := strings.CutPrefix(url, "unix://")
	if !ok {
		return nil, fmt.Errorf("podman url %q: want unix:///PATH", url)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &podman{url: url, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// call sends one request to the libpod API and decodes a JSON answer into
// out if out is not nil. Codes in ok count as success.
func (p *podman) call(ctx context.Context, method, path string, body any, out any, ok ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://d/v4.0.0/libpod"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	for _, c := range ok {
		if resp.StatusCode == c {
			if out != nil && len(data) > 0 {
				return json.Unmarshal(data, out)
			}
			return nil
		}
	}
	return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
}

func (p *podman) start(ctx context.Context, name string) error {
	return p.call(ctx, http.MethodPost, "/containers/"+name+"/start", nil, nil, 204, 304)
}

func (p *podman) stop(ctx context.Context, name string) error {
	return p.call(ctx, http.MethodPost, "/containers/"+name+"/stop?timeout=5", nil, nil, 204, 304)
}

// remove removes a container if it exists.
func (p *podman) remove(ctx context.Context, name string) error {
	return p.call(ctx, http.MethodDelete, "/containers/"+name+"?force=true&timeout=0", nil, nil, 200, 204, 404)
}

// create creates name from image with the given container ports published
// on 127.0.0.1 on host ports Podman picks, as `podman create -p
// 127.0.0.1::PORT` does.
func (p *podman) create(ctx context.Context, name, image string, ports ...int) error {
	type portMapping struct {
		HostIP        string `json:"host_ip"`
		ContainerPort int    `json:"container_port"`
		Protocol      string `json:"protocol"`
	}
	spec := struct {
		Name         string        `json:"name"`
		Image        string        `json:"image"`
		PortMappings []portMapping `json:"portmappings"`
	}{Name: name, Image: image}
	for _, cp := range ports {
		spec.PortMappings = append(spec.PortMappings, portMapping{"127.0.0.1", cp, "tcp"})
	}
	return p.call(ctx, http.MethodPost, "/containers/create", spec, nil, 201)
}

type containerInfo struct {
	State struct {
		Running bool
	}
	NetworkSettings struct {
		Ports map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string
		}
	}
}

func (p *podman) inspect(ctx context.Context, name string) (containerInfo, error) {
	var ci containerInfo
	err := p.call(ctx, http.MethodGet, "/containers/"+name+"/json", nil, &ci, 200)
	return ci, err
}

// hostAddr returns the 127.0.0.1:HOSTPORT that container port cport of
// name is published on.
func (p *podman) hostAddr(ctx context.Context, name string, cport int) (string, error) {
	ci, err := p.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	bs := ci.NetworkSettings.Ports[fmt.Sprintf("%d/tcp", cport)]
	if len(bs) == 0 || bs[0].HostPort == "" {
		return "", fmt.Errorf("container %s: port %d is not published", name, cport)
	}
	return net.JoinHostPort("127.0.0.1", bs[0].HostPort), nil
}

func (p *podman) running(ctx context.Context, name string) (bool, error) {
	ci, err := p.inspect(ctx, name)
	return ci.State.Running, err
}

func (p *podman) version(ctx context.Context) string {
	var v struct{ Version string }
	if err := p.call(ctx, http.MethodGet, "/version", nil, &v, 200); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return v.Version
}

// cli runs the podman command line against the service.
func (p *podman) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--remote", "--url", p.url}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}
