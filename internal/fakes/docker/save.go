package docker

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"
)

// save writes the named images as `docker save` does: a tar archive on
// stdout, or in the file of -o/--output. The stand-in's images have no
// content, so each is saved with one empty layer, in the layout Docker
// 25 and later write (image/tarexport/save.go@v27.5.1): the config and
// layers as blobs/sha256/<digest>, manifest.json listing each image's
// Config, RepoTags and Layers (lines 301-312, 345-359), oci-layout (lines
// 362-365) and index.json. An image the daemon does not have fails with
// "No such image" (daemon/images/image.go:35@v27.5.1).
func (d *daemon) save(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{short: map[string]string{"o": "output"}, interspersed: true})
	if err != nil || len(pos) == 0 {
		return d.usage("save", errors.Join(err, errors.New("\"docker save\" requires at least 1 argument")))
	}
	var archive bytes.Buffer
	code := d.world(func(w *world) error {
		tw := tar.NewWriter(&archive)
		type item struct {
			Config   string
			RepoTags []string
			Layers   []string
		}
		var manifest []item
		var index []map[string]any
		add := func(name string, body []byte) error {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			_, err := tw.Write(body)
			return err
		}
		blob := func(body []byte) (string, error) {
			sum := sha256.Sum256(body)
			name := path.Join("blobs", "sha256", hex.EncodeToString(sum[:]))
			return name, add(name, body)
		}
		for _, ref := range pos {
			im := w.image(ref)
			if im == nil {
				fmt.Fprintf(d.stderr, "Error response from daemon: No such image: %s\n", ref)
				return &exitErr{exitError}
			}
			var layer bytes.Buffer
			tar.NewWriter(&layer).Close() // an empty layer
			layerName, err := blob(layer.Bytes())
			if err != nil {
				return err
			}
			layerSum := sha256.Sum256(layer.Bytes())
			config, _ := json.Marshal(map[string]any{
				"architecture": hostArch(), "os": "linux", "created": im.Created.Format(time.RFC3339Nano),
				"config": map[string]any{"Labels": im.Labels},
				"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(layerSum[:])}},
			})
			configName, err := blob(config)
			if err != nil {
				return err
			}
			manifest = append(manifest, item{Config: configName, RepoTags: im.Refs, Layers: []string{layerName}})
			index = append(index, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + path.Base(configName)})
		}
		m, _ := json.Marshal(manifest)
		if err := add("manifest.json", append(m, '\n')); err != nil {
			return err
		}
		if err := add("oci-layout", []byte(`{"imageLayoutVersion": "1.0.0"}`)); err != nil {
			return err
		}
		ix, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index})
		if err := add("index.json", ix); err != nil {
			return err
		}
		return tw.Close()
	})
	if code != exitOK {
		return code
	}
	var out io.Writer = d.stdout
	if o := opts.last("output"); o != "" {
		if err := os.WriteFile(o, archive.Bytes(), 0o644); err != nil {
			fmt.Fprintf(d.stderr, "failed to save image: %v\n", err)
			return exitError
		}
		return exitOK
	}
	out.Write(archive.Bytes())
	return exitOK
}
